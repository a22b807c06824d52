"""Lifecycle of real MPI jobs: timeout, the run policy's deadline, cancellation (event loop free meanwhile) and
Ctrl-C stop mpirun and every rank. Every test asserts that nothing is left (``run_name`` fixture: processes by the job
marker in their environment or by name, job directories, Open MPI session directories)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest
from _mpi_testkit import assert_no_leaks, job_processes

import flyte
from _marker_kit import wait_for_started
from flyte.errors import TaskTimeoutError
from flyteplugins.mpi.task import MPIJob, MPIJobError, RunPolicy, Worker

pytestmark = [pytest.mark.mpi, pytest.mark.slow]

env = flyte.TaskEnvironment(name="mpi_life", plugin_config=MPIJob(worker=Worker(replicas=2)))


@env.task
def train_forever(marker_dir: str) -> None:
    Path(marker_dir, f"started-{flyte.ctx().rank}").write_text(str(os.getpid()))
    time.sleep(600)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_timeout_stops_every_rank(run_name, tmp_path):
    # The timeout also covers starting mpirun and both ranks, seconds on a loaded machine: it must strike in training.
    with pytest.raises(TaskTimeoutError, match="exceeded its timeout of 30s"):
        flyte.with_runcontext(name=run_name).run(train_forever.override(timeout=30), str(tmp_path))
    pids = [int(p.read_text()) for p in tmp_path.glob("started-*")]
    assert len(pids) == 2 and not any(_alive(pid) for pid in pids)  # both ranks ran, and are gone


def test_the_run_policys_deadline_stops_the_job(run_name, tmp_path):
    bounded = train_forever.override(plugin_config=MPIJob(worker=Worker(replicas=2),
                                                          run_policy=RunPolicy(active_deadline_seconds=3)))
    with pytest.raises(MPIJobError, match="active_deadline_seconds=3"):
        flyte.with_runcontext(name=run_name).run(bounded, str(tmp_path))


def test_cancellation_stops_every_rank_and_the_loop_stays_free(run_name, tmp_path):
    ticks = 0

    async def main() -> None:
        nonlocal ticks
        async with anyio.create_task_group() as group:
            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await anyio.sleep(0.05)

            group.start_soon(ticker)
            group.start_soon(flyte.with_runcontext(name=run_name).run.aio, train_forever, str(tmp_path))
            await anyio.to_thread.run_sync(wait_for_started, tmp_path, 2)
            ticks_when_running = ticks
            assert len(job_processes()) >= 3  # the leak check sees mpirun and both ranks
            await anyio.sleep(1.0)
            assert ticks - ticks_when_running >= 5  # other work progressed while the job ran
            group.cancel_scope.cancel()

    anyio.run(main)
    pids = [int(p.read_text()) for p in tmp_path.glob("started-*")]
    assert pids and not any(_alive(pid) for pid in pids)


CTRL_C_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import flyte
    from flyteplugins.mpi.task import MPIJob, Worker

    env = flyte.TaskEnvironment(name="mpi_ctrl_c", plugin_config=MPIJob(worker=Worker(replicas=2), slots=2))

    @env.task
    def train(marker_dir: str) -> None:
        Path(marker_dir, f"started-{flyte.ctx().rank}").write_text(str(os.getpid()))
        time.sleep(600)

    try:
        flyte.with_runcontext(name=sys.argv[2]).run(train, sys.argv[1])
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
""")


def test_ctrl_c_stops_mpirun_and_every_rank(run_name, tmp_path):
    script = tmp_path / "ctrl_c_script.py"
    script.write_text(CTRL_C_SCRIPT)
    markers = tmp_path / "markers"
    markers.mkdir()
    process = subprocess.Popen([sys.executable, str(script), str(markers), run_name], stdout=subprocess.PIPE,
                               text=True, env={**os.environ, "FLYTE_PROGRESS": "quiet"})
    try:
        pids = wait_for_started(markers, 4)
        process.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the foreground program
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130 and "interrupted" in out
    assert not any(_alive(pid) for pid in pids)
    assert_no_leaks(run_name)
