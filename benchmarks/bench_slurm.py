"""Slurm plugin: a function task against a raw ``sbatch --wait`` of the same work, on the real single-node cluster
the tests use (``tests/slurm/_slurm_testkit.py``: munged, slurmctld, slurmd and a loopback sshd).

- raw:  ``sbatch --wait`` of a script running ``python -c <the function's body>``, submitted here (no SSH).
- floor: the same script submitted here and followed with ``squeue`` every 20 ms: the job's own latency (Slurm
        starting it, the interpreter), what no client can beat; ``sbatch --wait`` itself polls every 2 s.
- task: ``flyte.run(task)`` of that function with ``SlurmFunctionConfig``: SSH to the login node, SFTP of the task,
        inputs and bundle, ``sbatch``, polling ``squeue --json``, ``python -m flyte.runtime`` in the job, the
        outputs fetched back, the run's directory removed. One run per round: its connection is made anew.
- warm: the same task called 5 times in one run (one connection), per call.

Rounds alternate raw and task so machine noise hits both alike; figures are medians. Target: task/raw <= 1.5.
Run: ``python -m benchmarks.bench_slurm`` (as root, with scripts/bootstrap's Slurm packages; ``BENCH_SLURM_ROUNDS``
to change the 5 rounds).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import flyte
from flyteplugins.slurm.function.task import SlurmFunctionConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "slurm"))
from _slurm_testkit import SlurmTestCluster, start_cluster  # noqa: E402

WORK = "sum(i * i for i in range(200_000))"


def work(n: int) -> int:
    return sum(i * i for i in range(n))


def raw_once(cluster: SlurmTestCluster, directory: str) -> float:
    script = Path(directory, "raw.sh")
    script.write_text(f"#!/bin/bash\n{sys.executable} -c 'print({WORK})'\n")
    started = time.perf_counter()
    cluster.run("sbatch", "--wait", "--quiet", "-o", "/dev/null", "--chdir", directory, str(script), timeout=300)
    return time.perf_counter() - started


def floor_once(cluster: SlurmTestCluster, directory: str) -> float:
    script = Path(directory, "raw.sh")
    started = time.perf_counter()
    job = cluster.run("sbatch", "--parsable", "-o", "/dev/null", "--chdir", directory, str(script)).stdout.strip()
    while cluster.run("squeue", "-h", "-j", job, "-o", "%T", check=False).stdout.strip():
        time.sleep(0.02)
    return time.perf_counter() - started


def task_once(task) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    assert flyte.with_runcontext(progress="quiet").run(task, 200_000).outputs()[0] == eval(WORK)
    return time.perf_counter() - started


def warm_per_call(task, calls: int = 5) -> float:  # type: ignore[no-untyped-def]
    driver = flyte.TaskEnvironment(name="bench_slurm_driver")

    @driver.task
    async def many() -> None:
        for _ in range(calls):
            await task.aio(200_000)

    started = time.perf_counter()
    flyte.with_runcontext(progress="quiet").run(many)
    return (time.perf_counter() - started) / calls


def main() -> None:
    rounds = int(os.environ.get("BENCH_SLURM_ROUNDS", "5"))
    cluster = start_cluster()
    directory = tempfile.mkdtemp(prefix="bench-slurm-", dir=str(cluster.root / "home"))
    try:
        config = SlurmFunctionConfig(ssh_config=cluster.ssh_config(), python=sys.executable,
                                     remote_dir=cluster.remote_dir)
        task = flyte.TaskEnvironment(name="bench_slurm", plugin_config=config).task(work)
        task_once(task)  # warms the page cache and the bundle cache for both variants alike
        raw, floor, timed = [], [], []
        for _ in range(rounds):
            raw.append(raw_once(cluster, directory))
            floor.append(floor_once(cluster, directory))
            timed.append(task_once(task))
        warm = warm_per_call(task)
    finally:
        cluster.stop()
    raw_median, task_median = statistics.median(raw), statistics.median(timed)
    floor_median = statistics.median(floor)
    print(f"slurm function task: sbatch --wait {raw_median:.2f}s  task {task_median:.2f}s  "
          f"ratio {task_median / raw_median:.2f}x (target <= 1.5x; {rounds} rounds, medians)")
    print(f"slurm function task over the job's own latency (squeue every 20 ms: {floor_median:.2f}s): "
          f"ratio {task_median / floor_median:.2f}x, {task_median - floor_median:+.2f}s")
    print(f"slurm function task, warm connection: {warm:.2f}s per call (5 calls in one run)")


if __name__ == "__main__":
    main()
