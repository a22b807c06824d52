"""The local Ray instance goes away however a run ends: success, failure, timeout, cancellation, SIGTERM of the
driver. Nothing Ray started may remain (raylet, gcs_server, workers, agents) and its temp dir must be removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import anyio
import pytest

import flyte
from flyte.errors import TaskTimeoutError
from flyteplugins.ray.task import RayJobConfig, WorkerNodeConfig

pytestmark = [pytest.mark.ray, pytest.mark.slow]

CONFIG = RayJobConfig(worker_node_config=[WorkerNodeConfig(group_name="w", replicas=1)])


def _tasks(leak, started=None):
    import ray

    env = flyte.TaskEnvironment(name="ray_life", plugin_config=CONFIG)

    @ray.remote
    def nap(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @env.task
    async def warm() -> int:
        ray.get(nap.remote(0))
        return leak.record()

    @env.task
    async def fails() -> None:
        ray.get(nap.remote(0))
        leak.record()
        raise ValueError("boom in a Ray task")

    @env.task
    async def sleeps() -> float:
        ref = nap.remote(120)
        leak.record()
        if started is not None:
            started.set()
        return await ref  # an ObjectRef is awaitable: cancellation reaches it

    @env.task
    def sleeps_sync() -> float:
        ref = nap.remote(120)
        leak.record()
        return ray.get(ref)

    driver = flyte.TaskEnvironment(name="ray_life_driver")

    @driver.task
    async def warm_then(what: str) -> float:
        assert await warm() > 0
        if what == "timeout":
            return await sleeps.override(timeout=2)()
        if what == "timeout_sync":
            return await sleeps_sync.override(timeout=2)()
        return await sleeps()

    return warm, fails, warm_then


def test_success_leaves_nothing(no_ray_leak):
    warm, _, _ = _tasks(no_ray_leak)
    assert flyte.run(warm).outputs()[0] >= 2  # at least a GCS and a raylet were seen


def test_failure_leaves_nothing(no_ray_leak):
    _, fails, _ = _tasks(no_ray_leak)
    with pytest.raises(ValueError, match="boom in a Ray task"):
        flyte.run(fails)


@pytest.mark.parametrize("what", ["timeout", "timeout_sync"])
def test_timeout_leaves_nothing(no_ray_leak, what):
    _, _, warm_then = _tasks(no_ray_leak)
    started = time.monotonic()
    with pytest.raises(TaskTimeoutError):
        flyte.run(warm_then, what)
    assert time.monotonic() - started < 90


def test_cancellation_leaves_nothing(no_ray_leak):
    async def main() -> None:
        started = anyio.Event()
        _, _, warm_then = _tasks(no_ray_leak, started)
        async with anyio.create_task_group() as group:
            group.start_soon(flyte.run.aio, warm_then, "cancel")
            with anyio.fail_after(120):
                await started.wait()
            group.cancel_scope.cancel()

    anyio.run(main)
    assert no_ray_leak.seen


DRIVER = textwrap.dedent("""
    import sys, time
    import ray
    import flyte
    from flyteplugins.ray.task import RayJobConfig

    env = flyte.TaskEnvironment(name="ray_sigterm", plugin_config=RayJobConfig())

    @ray.remote
    def nap():
        time.sleep(300)

    @env.task
    async def hold() -> None:
        ref = nap.remote()
        print("READY", flyte.ctx().data["ray_temp_dir"], flush=True)
        await ref

    flyte.run(hold)
""")


def test_sigterm_of_the_driver_leaves_nothing(tmp_path):
    import psutil

    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = {**os.environ, "FLYTE_PROGRESS": "quiet", "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=env)
    try:
        line = ""
        deadline = time.monotonic() + 120
        while not line.startswith("READY") and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        assert line.startswith("READY"), "the driver never started Ray"
        temp_dir = line.split()[1]
        time.sleep(1)  # let the worker for nap() start
        children = [(p.pid, p.create_time()) for p in psutil.Process(proc.pid).children(recursive=True)]
        assert len(children) >= 3
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 20
    while True:
        alive = []
        for pid, created in children:
            try:
                child = psutil.Process(pid)
                if child.create_time() == created and child.status() != psutil.STATUS_ZOMBIE:
                    alive.append(" ".join(child.cmdline())[:100])
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not alive, f"left running after SIGTERM: {alive}"
    assert not os.path.exists(temp_dir), f"Ray temp dir left after SIGTERM: {temp_dir}"
