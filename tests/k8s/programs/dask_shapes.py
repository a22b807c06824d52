"""Dask tasks with the same values locally and on Kubernetes (DaskJobs): a module-level function mapped over the
workers, the number of workers, the same with more workers (``override(plugin_config=...)``), and a user exception
raised in a Dask task reaching the caller as itself.

    python dask_shapes.py      # prints the outputs as JSON

Run as a script, this file is ``__main__``, whose functions all travel by value. The tasks are taken from the
module ``dask_shapes`` instead (this file imported by name, as any module of a project is), so its plain functions
(``shifted``, ``where``) are pickled by reference and Dask's workers must import ``dask_shapes`` themselves: from
the code bundle the task ships to them.
"""
import json
import os
import sys

from distributed import Client

import flyte
from flyteplugins.dask import Dask, WorkerGroup


def sized(workers: int) -> Dask:
    return Dask(workers=WorkerGroup(number_of_workers=workers))


env = flyte.TaskEnvironment(name="dask_shapes", plugin_config=sized(1))
plain = flyte.TaskEnvironment(name="dask_shapes_main", depends_on=[env])


class ShapeError(ValueError):
    def __init__(self, message: str, sides: int) -> None:
        super().__init__(message)
        self.sides = sides


def shifted(x: int) -> int:
    return x + 10


def where(*_: object) -> str:
    return os.path.abspath(__file__)


@env.task
async def shapes(n: int, workers: int) -> dict:
    print(f"shaping {n} on {workers} workers", flush=True)
    client = Client()
    client.wait_for_workers(workers, timeout=120)
    values = client.gather(client.map(shifted, range(n)))
    origins = sorted(set(client.run(where).values()))
    return {"shifted": values, "workers": len(client.scheduler_info()["workers"]), "origins": origins}


@env.task
async def broken(sides: int) -> int:
    raise ShapeError(f"no shape has {sides} sides", sides=sides)


@plain.task
async def main(n: int) -> dict:
    base = await shapes(n, 1)
    resized = await shapes.override(plugin_config=sized(2))(n, 2)
    try:
        await broken(3)
        caught = "not raised"
    except ShapeError as exc:
        caught = f"{type(exc).__name__} sides={exc.sides}: {exc}"
    return {"base": base, "resized": resized, "caught": caught}


def run() -> None:
    flyte.init_from_config()
    print(json.dumps(flyte.run(main, n=4).outputs()[0], sort_keys=True))


if __name__ == "__main__":
    import dask_shapes

    dask_shapes.run()
    sys.exit(0)
