"""Dask on this machine: an embedded cluster sized by the config, reused across calls, resized by an override.

Run: ``python examples/dask_example.py``. To use a running cluster instead, give
``Dask(scheduler_address="tcp://host:8786")``: the code below stays the same.
"""

from __future__ import annotations

import dask.array as da
from distributed import Client

import flyte
from flyteplugins.dask.task import Dask, Scheduler, WorkerGroup

dask_config = Dask(
    scheduler=Scheduler(resources=flyte.Resources(cpu="1", memory="1Gi")),
    workers=WorkerGroup(number_of_workers=2, resources=flyte.Resources(cpu="1", memory="1Gi")),
)

dask_env = flyte.TaskEnvironment(name="dask_env", plugin_config=dask_config, image="my-dask-image")
driver_env = flyte.TaskEnvironment(name="driver")


@dask_env.task
async def array_total(size: int) -> tuple[int, float]:
    """Sum a chunked array on the task's cluster; returns (workers seen, total)."""
    client = Client()  # no arguments: the task's cluster
    workers = len(client.scheduler_info()["workers"])
    total = float(da.ones((size, size), chunks=size // 4).sum().compute())
    return workers, total


@driver_env.task
async def main(size: int = 1000) -> list[tuple[int, float]]:
    results = [await array_total(size), await array_total(size)]  # the second call reuses the cluster
    bigger = Dask(workers=WorkerGroup(number_of_workers=3, resources=flyte.Resources(cpu="1", memory="1Gi")))
    results.append(await array_total.override(plugin_config=bigger)(size))  # a 3-worker cluster replaces it
    return results


if __name__ == "__main__":
    run = flyte.with_runcontext(progress="plain").run(main, 1000)
    for workers, total in run.outputs()[0]:
        print(f"{workers} workers -> {total:.0f}")
    assert [workers for workers, _ in run.outputs()[0]] == [2, 2, 3]
