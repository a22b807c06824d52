"""PyTorch plugin: a 2-process gloo all_reduce as a task against ``torchrun --nproc_per_node 2`` on the same script,
and the zombie watchdog's detection time.

- raw:   ``torchrun --nproc_per_node 2 script.py`` as a subprocess, wall time (interpreter, agent, workers).
- task:  ``flyte.run(task)`` whose workers run the same script: the launcher process, elastic agent, workers,
         result and error plumbing, all included.
- watchdog: all workers abort while the agent is frozen; time from the abort to the task's ZombieWorkersError.

Rounds alternate raw and task so machine noise hits both alike; figures are medians. Target: task/raw <= 1.15,
watchdog < 5 s. Run: ``python -m benchmarks.bench_pytorch`` (``BENCH_PYTORCH_ROUNDS`` to change the 5 rounds).
"""

from __future__ import annotations

import os
import runpy
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import flyte
from flyteplugins.pytorch.task import Elastic, ZombieWorkersError

SCRIPT = '''
import torch, torch.distributed as dist
dist.init_process_group("gloo")
tensor = torch.ones(1_000_000) * (dist.get_rank() + 1)
for _ in range(10):
    dist.all_reduce(tensor)
dist.destroy_process_group()
'''

env = flyte.TaskEnvironment(name="bench_pytorch", plugin_config=Elastic(nproc_per_node=2))


@env.task
def run_script(path: str) -> None:
    runpy.run_path(path, run_name="__main__")


@env.task
def abort_while_agent_frozen(marker_dir: str) -> None:
    rank = flyte.ctx().rank
    Path(marker_dir, f"ready-{rank}").touch()
    while len(list(Path(marker_dir).glob("ready-*"))) < 2:
        time.sleep(0.01)
    if rank == 0:
        os.kill(os.getppid(), signal.SIGSTOP)
        Path(marker_dir, "go").write_text(repr(time.time()))
    while not Path(marker_dir, "go").exists():
        time.sleep(0.001)
    os.abort()


def raw_once(script: str) -> float:
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    started = time.perf_counter()
    subprocess.run([torchrun, "--nproc_per_node", "2", script], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def task_once(script: str) -> float:
    started = time.perf_counter()
    flyte.with_runcontext(progress="quiet").run(run_script, script)
    return time.perf_counter() - started


def watchdog_once() -> float:
    directory = tempfile.mkdtemp(prefix="bench-torch-watchdog-")
    try:
        try:
            flyte.with_runcontext(progress="quiet").run(abort_while_agent_frozen, directory)
        except ZombieWorkersError:
            return time.time() - float(Path(directory, "go").read_text())
        raise AssertionError("the watchdog did not fire")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    rounds = int(os.environ.get("BENCH_PYTORCH_ROUNDS", "5"))
    directory = tempfile.mkdtemp(prefix="bench-torch-")
    script = os.path.join(directory, "all_reduce.py")
    Path(script).write_text(SCRIPT)
    try:
        task_once(script)  # warms the page cache for torch's files, for both variants alike
        raw, task = [], []
        for _ in range(rounds):
            raw.append(raw_once(script))
            task.append(task_once(script))
        detection = [watchdog_once() for _ in range(2)]
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    raw_median, task_median = statistics.median(raw), statistics.median(task)
    print(f"pytorch 2-proc gloo all_reduce: torchrun {raw_median:.2f}s  task {task_median:.2f}s  "
          f"ratio {task_median / raw_median:.2f}x (target <= 1.15x; {rounds} rounds, medians)")
    print(f"pytorch zombie watchdog detection: {max(detection):.2f}s worst of {len(detection)} "
          f"(default interval 0.5s; target < 5s)")


if __name__ == "__main__":
    main()
