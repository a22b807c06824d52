"""Ray tasks with the same values locally and on Kubernetes (RayJobs): squares computed by the job's workers, a
variable of the job's runtime_env, the cluster's size and, with an ``override(plugin_config=...)``, a bigger one; a
user exception raised in a Ray task reaches the caller as itself.

    python ray_shapes.py [main|rejected|never_ready|slow|late]   # prints the outputs (or the error) as JSON

Run as a script, this file is ``__main__``, whose functions all travel by value. The tasks are taken from the
module ``ray_shapes`` instead (this file imported by name, as any module of a project is), so its plain functions
(``where``) are pickled by reference and Ray's workers must import ``ray_shapes`` themselves: from the job's
``working_dir``, the code bundle on the object store, where ``code_origin`` finds it.
"""
import json
import os
import sys
import time

import ray

import flyte
from flyteplugins.ray.task import HeadNodeConfig, RayJobConfig, WorkerNodeConfig


def sized(workers: int, head: HeadNodeConfig | None = None) -> RayJobConfig:
    groups = [WorkerNodeConfig(group_name="cpu", replicas=workers)] if workers else []
    return RayJobConfig(head_node_config=head, worker_node_config=groups,
                        runtime_env={"env_vars": {"SHAPE": "square"}})


env = flyte.TaskEnvironment(name="ray_shapes", plugin_config=sized(1))
plain = flyte.TaskEnvironment(name="ray_shapes_main", depends_on=[env])


class ShapeError(ValueError):
    def __init__(self, message: str, sides: int) -> None:
        super().__init__(message)
        self.sides = sides


@ray.remote
def square(x: int) -> int:
    return x * x


@ray.remote
def shape() -> str:
    return os.environ.get("SHAPE", "")


def where() -> str:
    # A plain function of this module is pickled by reference (a decorated one, such as a task or a remote
    # function, travels by value): whoever calls it imports ``ray_shapes``, and this is the file it found.
    return os.path.abspath(__file__)


@ray.remote
def code_origin() -> str:
    return where()


@env.task
async def shapes(n: int) -> dict:
    print(f"shaping {n} on {sum(1 for node in ray.nodes() if node['Alive'])} nodes", flush=True)
    squares = ray.get([square.remote(i) for i in range(n)])
    return {"squares": squares, "shape": ray.get(shape.remote()),
            "nodes": sum(1 for node in ray.nodes() if node["Alive"]), "origin": ray.get(code_origin.remote())}


@env.task
async def broken(sides: int) -> int:
    raise ShapeError(f"no shape has {sides} sides", sides=sides)


@env.task
async def sleepy(seconds: int) -> int:
    print("started", flush=True)
    time.sleep(seconds)
    return seconds


late = sleepy.override(timeout=40)


@plain.task
async def main(n: int) -> dict:
    base = await shapes(n)
    resized = await shapes.override(plugin_config=sized(2))(n)
    try:
        await broken(3)
        caught = "not raised"
    except ShapeError as exc:
        caught = f"{type(exc).__name__} sides={exc.sides}: {exc}"
    return {"base": base, "resized": resized, "caught": caught}


def run(scenario: str) -> None:
    flyte.init_from_config()
    task, args = {
        "main": (main, {"n": 4}),
        "rejected": (shapes, {"n": 1}),
        # a head no node has room for: the RayJob never gets its cluster
        "never_ready": (shapes.override(plugin_config=sized(0, HeadNodeConfig(
            requests=flyte.Resources(cpu="64")))), {"n": 1}),
        "slow": (sleepy, {"seconds": 300}),
        "late": (late, {"seconds": 300}),
    }[scenario]
    try:
        result = flyte.run(task, **args)
    except Exception as exc:
        print(json.dumps({"error": type(exc).__name__, "code": getattr(exc, "code", None), "message": str(exc)}))
        sys.exit(1)
    print(json.dumps(result.outputs()[0], sort_keys=True))


if __name__ == "__main__":
    import ray_shapes

    ray_shapes.run(sys.argv[1] if len(sys.argv) > 1 else "main")
