"""Resize by override against a cold start, for Spark, Ray and Dask, in one run of this script.

In a run, a driver calls the engine task with a small config first (the cold start: the call that starts the engine),
then alternates ``task.override(plugin_config=bigger)`` and the small config again: every later call changes the
engine's size. Each figure is the whole task call as its caller sees it (the body is trivial). Rounds repeat the run;
figures are medians.

- Spark: 1 -> 2 executors (local[1] <-> local[2]): the same JVM gets a new SparkContext.
- Dask: 1 -> 2 workers: the live cluster is scaled.
- Ray: 1 -> 2 CPUs: a local Ray's node resources are fixed when it starts, so a resize is a restart.

Targets: Spark resize <= 25 % of its cold start; Dask resize <= 0.5 s. Run: ``python -m benchmarks resize``
(``BENCH_RESIZE_ROUNDS``, default 3; ``BENCH_RESIZE_ENGINES``, default ``spark,ray,dask``).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import flyte
from flyteplugins.dask.task import Dask, WorkerGroup
from flyteplugins.ray.task import HeadNodeConfig, RayJobConfig
from flyteplugins.spark.task import Spark

RESIZES_PER_RUN = 4


def spark_configs() -> tuple[Any, Any]:
    return (Spark(spark_conf={"spark.executor.instances": "1"}),
            Spark(spark_conf={"spark.executor.instances": "2"}))


def ray_configs() -> tuple[Any, Any]:
    return (RayJobConfig(head_node_config=HeadNodeConfig(ray_start_params={"num-cpus": "1"})),
            RayJobConfig(head_node_config=HeadNodeConfig(ray_start_params={"num-cpus": "2"})))


def dask_configs() -> tuple[Any, Any]:
    return (Dask(workers=WorkerGroup(number_of_workers=1)), Dask(workers=WorkerGroup(number_of_workers=2)))


spark_small, spark_big = spark_configs()
ray_small, ray_big = ray_configs()
dask_small, dask_big = dask_configs()

spark_env = flyte.TaskEnvironment(name="bench_resize_spark", plugin_config=spark_small)
ray_env = flyte.TaskEnvironment(name="bench_resize_ray", plugin_config=ray_small)
dask_env = flyte.TaskEnvironment(name="bench_resize_dask", plugin_config=dask_small)
driver_env = flyte.TaskEnvironment(name="bench_resize_driver", depends_on=[spark_env, ray_env, dask_env])


@spark_env.task
def spark_parallelism() -> int:
    return int(flyte.ctx().data["spark_session"].sparkContext.defaultParallelism)


@ray_env.task
def ray_cpus() -> int:
    import ray

    return int(ray.cluster_resources().get("CPU", 0))


@dask_env.task
def dask_workers() -> int:
    from distributed import Client

    return len(Client().scheduler_info(n_workers=-1)["workers"])


TASKS: dict[str, tuple[Any, Any, Any, tuple[int, int]]] = {
    # engine: (task, small config, big config, (what the task reports on small, on big))
    "spark": (spark_parallelism, spark_small, spark_big, (1, 2)),
    "ray": (ray_cpus, ray_small, ray_big, (1, 2)),
    "dask": (dask_workers, dask_small, dask_big, (1, 2)),
}


@driver_env.task
async def resize_round(engine: str) -> dict:
    task, small, big, expected = TASKS[engine]
    timings: dict[str, list[float]] = {"cold": [], "resize": []}
    for index in range(RESIZES_PER_RUN + 1):
        config, want = (small, expected[0]) if index % 2 == 0 else (big, expected[1])
        started = time.perf_counter()
        got = await task.override(plugin_config=config)()
        timings["cold" if index == 0 else "resize"].append(time.perf_counter() - started)
        if got != want:
            raise AssertionError(f"{engine}: the task saw {got}, the config asks for {want}")
    return timings


def _ms(values: list[float]) -> str:
    return ", ".join(f"{v * 1000:.0f}" for v in values)


def measure(engine: str, rounds: int) -> tuple[float, float]:
    cold: list[float] = []
    resize: list[float] = []
    for _ in range(rounds):
        timings = flyte.with_runcontext(progress="quiet").run(resize_round, engine).outputs()[0]
        cold += timings["cold"]
        resize += timings["resize"]
    cold_s, resize_s = statistics.median(cold), statistics.median(resize)
    print(f"{engine}: cold start median {cold_s * 1000:.0f} ms (runs: {_ms(cold)})")
    print(f"{engine}: resize by override median {resize_s * 1000:.0f} ms (calls: {_ms(resize)})")
    print(f"{engine}: resize / cold = {resize_s / cold_s:.2f}")
    return cold_s, resize_s


TARGETS: dict[str, Callable[[float, float], str]] = {
    "spark": lambda cold, resize: f"target resize <= 25% of cold: {'met' if resize <= 0.25 * cold else 'MISSED'}",
    "dask": lambda cold, resize: f"target resize <= 0.5 s: {'met' if resize <= 0.5 else 'MISSED'}",
    "ray": lambda cold, resize: "no target: a local Ray cannot change its node's resources, so it restarts",
}


def main() -> None:
    rounds = int(os.environ.get("BENCH_RESIZE_ROUNDS", "3"))
    engines = os.environ.get("BENCH_RESIZE_ENGINES", "spark,ray,dask").split(",")
    for engine in engines:
        cold, resize = measure(engine, rounds)
        print(f"{engine}: {TARGETS[engine](cold, resize)}", flush=True)


if __name__ == "__main__":
    main()
