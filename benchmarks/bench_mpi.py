"""MPI plugin: a 2-rank mpi4py program as a task against a raw ``mpirun -np 2`` of the same script, and the time
from a rank dying in a collective to the task's error.

- raw:   ``mpirun -np 2 python script.py`` as a subprocess, wall time (mpirun, two interpreters, mpi4py, the work).
- task:  ``flyte.run(task)`` whose ranks run the same script: the job directory, the reaper, mpirun, the ranks'
         payload loading, result and error plumbing, all included.
- dead rank: rank 1 exits while rank 0 waits in an allreduce; time from the exit to the task's MPIJobError.

The work: 20 allreduces of 4 M float64 (32 MB) per rank. Rounds alternate raw and task so machine noise hits both
alike; figures are medians. Target: task/raw <= 1.15. Run: ``python -m benchmarks mpi`` (``BENCH_MPI_ROUNDS`` to
change the 5 rounds).
"""

from __future__ import annotations

import os
import runpy
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import flyte
from flyteplugins.mpi._launch import local_environment, mpirun_executable
from flyteplugins.mpi.task import MPIJob, MPIJobError, Worker

SCRIPT = '''
import numpy as np
from mpi4py import MPI
comm = MPI.COMM_WORLD
data = np.full(4_000_000, comm.rank + 1.0)
out = np.empty_like(data)
for _ in range(20):
    comm.Allreduce(data, out)
'''

env = flyte.TaskEnvironment(name="bench_mpi", plugin_config=MPIJob(worker=Worker(replicas=2)))


@env.task
def run_script(path: str) -> None:
    runpy.run_path(path, run_name="__main__")


@env.task
def rank_one_dies(marker: str) -> None:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    comm.barrier()
    if comm.rank == 1:
        Path(marker).write_text(repr(time.time()))
        os._exit(3)
    comm.allreduce(1)


def raw_once(script: str, environ: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([mpirun_executable(), "-np", "2", sys.executable, script], check=True, env=environ,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def task_once(script: str) -> float:
    started = time.perf_counter()
    flyte.with_runcontext(progress="quiet").run(run_script, script)
    return time.perf_counter() - started


def dead_rank_once(directory: str) -> float:
    marker = os.path.join(directory, "died")
    try:
        flyte.with_runcontext(progress="quiet").run(rank_one_dies, marker)
    except MPIJobError:
        return time.time() - float(Path(marker).read_text())
    raise AssertionError("the task did not fail")


def main() -> None:
    rounds = int(os.environ.get("BENCH_MPI_ROUNDS", "5"))
    directory = tempfile.mkdtemp(prefix="bench-mpi-")
    script = os.path.join(directory, "allreduce.py")
    Path(script).write_text(SCRIPT)
    # The raw run gets what a user would set by hand to run as root with no core binding on a small machine.
    raw_env = {k: v for k, v in local_environment(MPIJob(worker=Worker(replicas=2)), directory, os.environ).items()
               if not k.endswith("default_hostfile") and k not in ("FLYTE_MPI_JOB", "TMPDIR")}
    raw_env["PRTE_MCA_rmaps_default_mapping_policy"] = ":oversubscribe"
    try:
        task_once(script)  # warms the page cache for numpy's and Open MPI's files, for both variants alike
        raw, task = [], []
        for _ in range(rounds):
            raw.append(raw_once(script, raw_env))
            task.append(task_once(script))
        detection = [dead_rank_once(directory) for _ in range(2)]
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    raw_median, task_median = statistics.median(raw), statistics.median(task)
    print(f"mpi 2-rank allreduce (20 x 32 MB): mpirun {raw_median:.2f}s  task {task_median:.2f}s  "
          f"ratio {task_median / raw_median:.2f}x (target <= 1.15x; {rounds} rounds, medians)")
    print(f"mpi dead rank in a collective -> task error: {max(detection):.2f}s worst of {len(detection)}")


if __name__ == "__main__":
    main()
