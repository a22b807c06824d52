"""How Slurm calls end when they are cut short, and how they share the login: a task's timeout and Ctrl-C
``scancel`` the job and wait for it (nothing left in ``squeue``, nothing left on the cluster); Slurm's own time limit
is a clear error; concurrent calls share one SSH connection, which is made again when it drops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import anyio
import pytest

import flyte
from flyte.errors import TaskTimeoutError
from flyteplugins.slurm.function.task import SlurmFunctionConfig
from flyteplugins.slurm.script.task import SlurmConfig, SlurmJobTimeoutError, SlurmShellTask

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def config_for(cluster, **overrides):
    values = {"ssh_config": cluster.ssh_config(), "python": sys.executable, "remote_dir": cluster.remote_dir}
    values.update(overrides)
    return SlurmFunctionConfig(**values)


def wait_for(path: Path, timeout: float = 120) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.1)
    raise AssertionError(f"{path} did not appear within {timeout}s")


def sleep_in_job(marker: str, seconds: float) -> str:
    import os
    import time
    from pathlib import Path

    Path(marker).write_text(os.environ["SLURM_JOB_ID"])
    time.sleep(seconds)
    return os.environ["SLURM_JOB_ID"]


def test_task_timeout_cancels_the_job_and_waits_for_it(cluster, tmp_path):
    task = flyte.TaskEnvironment(name="slurm_timeout", plugin_config=config_for(cluster)).task(sleep_in_job)
    marker = tmp_path / "started"
    # The timeout also covers connecting, sbatch and the job's start: it must strike while the job runs.
    with pytest.raises(TaskTimeoutError, match="exceeded its timeout of 40s"):
        flyte.run(task.override(timeout=40), str(marker), 300)
    job_id = marker.read_text()  # the job was running when the timeout struck
    assert cluster.active_jobs(job_id) == []  # at once: the call waited until Slurm had ended it
    state = cluster.job_record(job_id).get("JobState")
    assert state in (None, "CANCELLED")


def test_cancelling_a_call_cancels_its_job_and_the_loop_stays_free(cluster, tmp_path):
    task = flyte.TaskEnvironment(name="slurm_cancel", plugin_config=config_for(cluster)).task(sleep_in_job)
    marker = tmp_path / "started"
    ticks = 0

    async def main() -> None:
        nonlocal ticks
        async with anyio.create_task_group() as group:
            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await anyio.sleep(0.05)

            async def call() -> None:
                await flyte.run.aio(task, str(marker), 300)

            group.start_soon(ticker)
            group.start_soon(call)
            while not (marker.exists() and marker.read_text()):
                await anyio.sleep(0.1)
            await anyio.sleep(1)
            group.cancel_scope.cancel()

    anyio.run(main)
    job_id = marker.read_text()
    assert ticks > 20  # the caller's loop ran while the job was followed
    assert cluster.active_jobs(job_id) == []


CTRL_C_SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    import flyte
    from flyteplugins.slurm.function.task import SlurmFunctionConfig

    settings = json.loads(sys.argv[1])
    env = flyte.TaskEnvironment(name="ctrlc", plugin_config=SlurmFunctionConfig(**settings))

    @env.task
    def wait_in_job(marker: str) -> None:
        Path(marker).write_text(os.environ["SLURM_JOB_ID"])
        time.sleep(600)

    if __name__ == "__main__":
        try:
            flyte.run(wait_in_job, sys.argv[2])
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(130)
""")


def test_ctrl_c_cancels_the_job_and_cleans_up(cluster, tmp_path):
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C_SCRIPT)
    marker = tmp_path / "started"
    settings = {"ssh_config": cluster.ssh_config(), "python": sys.executable, "remote_dir": cluster.remote_dir}
    process = subprocess.Popen([sys.executable, str(script), json.dumps(settings), str(marker)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "FLYTE_PROGRESS": "quiet"})
    try:
        job_id = wait_for(marker)
        assert cluster.active_jobs(job_id) == [job_id]
        process.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the foreground program
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130 and "interrupted" in out, err
    assert cluster.active_jobs(job_id) == []
    assert os.listdir(cluster.remote_dir) == []  # the run's directory on the cluster went with it


def test_slurm_time_limit_is_a_timeout_error(cluster):
    # Slurm counts limits in minutes and checks them every 30 s: this job is stopped 60 to 90 s after it starts.
    task = SlurmShellTask(name="over_time", task_config=SlurmConfig(ssh_config=cluster.ssh_config(),
                                                                    sbatch_config={"time": "1"},
                                                                    remote_dir=cluster.remote_dir),
                          script="#!/bin/bash\necho starting\nsleep 600\n")
    with pytest.raises(SlurmJobTimeoutError, match="ended TIMEOUT") as caught:
        flyte.run(task)
    assert caught.value.state == "TIMEOUT"
    assert "time limit" in str(caught.value) and "starting" in str(caught.value)


def concurrent_job(marker_dir: str, name: str) -> str:
    import os
    import time
    from pathlib import Path

    Path(marker_dir, name).write_text(os.environ["SLURM_JOB_ID"])
    deadline = time.monotonic() + 120
    while len(list(Path(marker_dir).iterdir())) < 2 and time.monotonic() < deadline:  # both run at once
        time.sleep(0.1)
    return os.environ["SLURM_JOB_ID"]


def test_concurrent_calls_share_one_connection(cluster, tmp_path):
    env = flyte.TaskEnvironment(name="slurm_pair", plugin_config=config_for(cluster))
    job = env.task(concurrent_job)
    driver_env = flyte.TaskEnvironment(name="slurm_pair_driver")

    @driver_env.task
    async def both(marker_dir: str) -> list[str]:
        import asyncio

        return list(await asyncio.gather(job.aio(marker_dir, "first"), job.aio(marker_dir, "second")))

    sessions: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            sessions.append(len(cluster.ssh_sessions()))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        job_ids = flyte.run(both, str(tmp_path)).outputs()[0]
    finally:
        stop.set()
        watcher.join()
    assert len(set(job_ids)) == 2
    assert max(sessions) == 1, f"SSH connections seen at once: {max(sessions)}"


def job_id_of_call() -> str:
    import os

    return os.environ["SLURM_JOB_ID"]


def test_a_dropped_connection_is_made_again(cluster):
    job = flyte.TaskEnvironment(name="slurm_drop", plugin_config=config_for(cluster)).task(job_id_of_call)
    driver_env = flyte.TaskEnvironment(name="slurm_drop_driver")
    dropped: list[int] = []

    @driver_env.task
    async def twice() -> list[str]:
        first = await job.aio()
        dropped.append(cluster.drop_ssh_connections())  # the server side of the pooled connection goes away
        second = await job.aio()
        return [first, second]

    job_ids = flyte.run(twice).outputs()[0]
    assert dropped == [1]
    assert len(set(job_ids)) == 2
