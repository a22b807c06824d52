"""Ray plugin overhead: a Ray task's cold first call and warm second call against a raw ``ray.init()`` running the
same remote calls, in one process, alternating so that machine noise hits both sides alike.

Run: ``python -m benchmarks.bench_ray [rounds]``. Targets: cold <= raw + 5%, warm <= raw + 10 ms.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("FLYTE_PROGRESS", "quiet")

import ray  # noqa: E402  (imported once up front: both sides pay no import cost)

import flyte  # noqa: E402
from flyteplugins.ray.task import RayJobConfig, WorkerNodeConfig  # noqa: E402

CALLS = 8
CONFIG = RayJobConfig(worker_node_config=[WorkerNodeConfig(group_name="w", replicas=2)])


@ray.remote
def square(x: int) -> int:
    return x * x


def remote_calls() -> list[int]:
    return ray.get([square.remote(i) for i in range(CALLS)])


ray_env = flyte.TaskEnvironment(name="bench_ray", plugin_config=CONFIG)
driver = flyte.TaskEnvironment(name="bench_ray_driver")


@ray_env.task
async def squares() -> list[int]:
    return remote_calls()


@driver.task
async def plugin_cold_then_warm() -> tuple[float, float]:
    started = time.perf_counter()
    await squares()
    cold = time.perf_counter() - started
    started = time.perf_counter()
    await squares()
    return cold, time.perf_counter() - started


def raw_cold_then_warm() -> tuple[float, float]:
    temp_dir = tempfile.mkdtemp(prefix="flyte-ray-bench-", dir="/tmp")
    cpus = min(2, os.cpu_count() or 1)
    started = time.perf_counter()
    ray.init(address="local", num_cpus=cpus, num_gpus=0, include_dashboard=False, _temp_dir=temp_dir)
    remote_calls()
    cold = time.perf_counter() - started
    started = time.perf_counter()
    remote_calls()
    warm = time.perf_counter() - started
    ray.shutdown()
    import shutil

    shutil.rmtree(temp_dir, ignore_errors=True)
    return cold, warm


def main(rounds: int | None = None) -> dict[str, float]:
    rounds = rounds or int(os.environ.get("BENCH_RAY_ROUNDS", "3"))
    raw_cold, raw_warm, plugin_cold, plugin_warm = [], [], [], []
    for index in range(rounds):
        sides = [("raw", raw_cold_then_warm), ("plugin", lambda: tuple(flyte.run(plugin_cold_then_warm).outputs()))]
        if index % 2:
            sides.reverse()
        for name, measure in sides:
            cold, warm = measure()
            (raw_cold if name == "raw" else plugin_cold).append(cold)
            (raw_warm if name == "raw" else plugin_warm).append(warm)
    figures = {
        "raw_cold_s": statistics.median(raw_cold),
        "plugin_cold_s": statistics.median(plugin_cold),
        "raw_warm_ms": statistics.median(raw_warm) * 1000,
        "plugin_warm_ms": statistics.median(plugin_warm) * 1000,
    }
    figures["cold_ratio"] = figures["plugin_cold_s"] / figures["raw_cold_s"]
    figures["warm_extra_ms"] = figures["plugin_warm_ms"] - figures["raw_warm_ms"]
    print(f"ray bench ({rounds} rounds, {CALLS} remote calls, medians)")
    print(f"  cold: raw ray.init + calls {figures['raw_cold_s']:.2f}s, plugin first call "
          f"{figures['plugin_cold_s']:.2f}s, ratio {figures['cold_ratio']:.3f} (target <= 1.05)")
    print(f"  warm: raw {figures['raw_warm_ms']:.1f} ms, plugin {figures['plugin_warm_ms']:.1f} ms, "
          f"extra {figures['warm_extra_ms']:+.1f} ms (target <= +10 ms)")
    print(f"  per-round cold raw {[round(x, 2) for x in raw_cold]} plugin {[round(x, 2) for x in plugin_cold]}")
    return figures


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else None)
