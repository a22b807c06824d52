"""Dask plugin: a cold first call against a hand-written LocalCluster + Client doing the same work, and warm calls.

- raw:   ``LocalCluster(2 workers) + Client`` -> computation -> close (what a script would do), in this process.
- cold:  ``flyte.run(task)``: the run starts the embedded cluster, ships the code bundle, runs the task, closes all.
- warm:  later calls of the same run (the cluster is reused): time of one whole task call, as seen by its caller.

Rounds alternate raw and cold so machine noise hits both alike; figures are medians. Targets: cold <= raw + 5%,
warm <= 50 ms. Run: ``python -m benchmarks.bench_dask`` (``BENCH_DASK_ROUNDS`` to change the 5 rounds).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time

import flyte
from flyteplugins.dask.task import Dask, WorkerGroup

WORKERS = 2
CONFIG = Dask(workers=WorkerGroup(number_of_workers=WORKERS, resources=flyte.Resources(cpu="1", memory="1Gi")))
env = flyte.TaskEnvironment(name="bench_dask", plugin_config=CONFIG)
driver_env = flyte.TaskEnvironment(name="bench_dask_driver")


def computation() -> float:
    """The same work for every variant: a chunked array reduction on the current client's cluster."""
    import dask.array as da

    return float(da.ones((1000, 1000), chunks=500).sum().compute())


@env.task
def work() -> float:
    return computation()


@env.task
def seed_style() -> int:
    from distributed import Client

    return len(Client().scheduler_info()["workers"])


@driver_env.task
async def repeated(calls: int) -> dict:
    timings: dict[str, list[float]] = {"work": [], "seed_style": []}
    for _ in range(calls):
        for name, task in (("work", work), ("seed_style", seed_style)):
            started = time.perf_counter()
            await task()
            timings[name].append(time.perf_counter() - started)
    return timings


def raw_once() -> float:
    from distributed import Client, LocalCluster

    scratch = tempfile.mkdtemp(prefix="bench-dask-raw-")
    started = time.perf_counter()
    try:
        with LocalCluster(n_workers=WORKERS, threads_per_worker=1, memory_limit=2**30, processes=True,
                          host="127.0.0.1", dashboard_address=":0", local_directory=scratch,
                          scheduler_kwargs={"local_directory": scratch}) as cluster, \
                Client(cluster) as client:
            client.wait_for_workers(WORKERS)
            with client.as_current():
                assert computation() == 1e6
        return time.perf_counter() - started
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def cold_once() -> float:
    started = time.perf_counter()
    assert flyte.with_runcontext(progress="quiet").run(work).outputs()[0] == 1e6
    return time.perf_counter() - started


def main() -> None:
    rounds = int(os.environ.get("BENCH_DASK_ROUNDS", "5"))
    import distributed  # noqa: F401  imports are not part of either figure

    raw_once()  # first cluster of the process: multiprocessing helpers start once, for both variants
    raw, cold = [], []
    for index in range(rounds):
        order = (raw_once, cold_once) if index % 2 == 0 else (cold_once, raw_once)
        for measure in order:
            (raw if measure is raw_once else cold).append(measure())
    raw_s, cold_s = statistics.median(raw), statistics.median(cold)
    print(f"raw LocalCluster+Client+compute+close: median {raw_s * 1000:.0f} ms  (runs: "
          f"{', '.join(f'{t * 1000:.0f}' for t in raw)})")
    print(f"flyte cold first call (whole run):    median {cold_s * 1000:.0f} ms  (runs: "
          f"{', '.join(f'{t * 1000:.0f}' for t in cold)})")
    print(f"cold / raw = {cold_s / raw_s:.3f}  (target <= 1.05)")

    calls = 20
    timings = flyte.with_runcontext(progress="quiet").run(repeated, calls).outputs()[0]
    warm = timings["work"][1:]
    print(f"first call in a run (cold, cluster start): {timings['work'][0] * 1000:.0f} ms")
    print(f"warm call (same computation): median {statistics.median(warm) * 1000:.1f} ms, "
          f"max {max(warm) * 1000:.1f} ms over {len(warm)} calls  (target <= 50 ms)")
    seed = timings["seed_style"]
    print(f"warm call, seed style (new distributed.Client() per call): median {statistics.median(seed) * 1000:.1f} ms")
    with_client = _compute_only()
    print(f"the computation alone on a live client: median {with_client * 1000:.1f} ms "
          f"-> warm per-call overhead ~{(statistics.median(warm) - with_client) * 1000:.1f} ms")


def _compute_only() -> float:
    from distributed import Client, LocalCluster

    scratch = tempfile.mkdtemp(prefix="bench-dask-raw-")
    try:
        with LocalCluster(n_workers=WORKERS, threads_per_worker=1, memory_limit=2**30, processes=True,
                          host="127.0.0.1", dashboard_address=":0", local_directory=scratch,
                          scheduler_kwargs={"local_directory": scratch}) as cluster, \
                Client(cluster) as client, client.as_current():
            client.wait_for_workers(WORKERS)
            computation()
            samples = []
            for _ in range(19):
                started = time.perf_counter()
                computation()
                samples.append(time.perf_counter() - started)
        return statistics.median(samples)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
