"""The task process's side of a job: start the launcher, await it without blocking the event loop, watch for the
agent hang, and stop the whole process group however the call ends."""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import threading
import time

import anyio

from flyteplugins.kubeflow import procfs as _procfs
from flyteplugins.kubeflow.local import poll_until

from ._errors import ZombieWorkersError

JOB_ENV = "FLYTE_PYTORCH_JOB"  # set on the launcher and inherited by every worker: finds strays by job
_POLL_MIN, _POLL_MAX = 0.01, 0.1

_live: set[LauncherProcess] = set()
_live_lock = threading.Lock()


class LauncherProcess:
    """One launcher (elastic agent) process, leader of its own process group that holds all its workers."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid = popen.pid
        with _live_lock:
            _live.add(self)

    @classmethod
    def start(cls, job_dir: str, env: dict[str, str]) -> LauncherProcess:
        command = [sys.executable, "-m", "flyteplugins.pytorch._launcher", job_dir]
        return cls(subprocess.Popen(command, env=env, start_new_session=True, stdin=subprocess.DEVNULL))

    def returncode(self) -> int | None:
        return self.popen.poll()

    async def wait(self, *, task_name: str, watchdog_interval: float | None, monitor_interval: float,
                   deadline: float | None = None) -> int:
        """Wait for the launcher to exit and return its exit code.

        Raises ``ZombieWorkersError`` when every worker stayed dead (a zombie nobody reaps) for longer than the agent
        needs to notice, i.e. the agent hangs; the whole group is then killed. ``deadline`` (monotonic) bounds
        the wait; past it ``TimeoutError`` is raised and the caller stops the job.
        """
        # The agent reaps dead workers every monitor_interval; a zombie living clearly longer means it is stuck.
        grace = max(3 * watchdog_interval, monitor_interval + watchdog_interval) if watchdog_interval else 0.0
        next_check = time.monotonic() + (watchdog_interval or 0.0)
        zombie_since: float | None = None
        delay = _POLL_MIN
        while True:
            code = self.popen.poll()
            if code is not None:
                return code
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise TimeoutError("deadline reached")
            if watchdog_interval and now >= next_check:
                next_check = now + watchdog_interval
                workers = _procfs.worker_states(self.pid)
                if workers and all(w.is_zombie for w in workers):
                    if zombie_since is None:
                        zombie_since = now
                    elif now - zombie_since >= grace:
                        raise self._zombie_error(task_name, workers, now - zombie_since)
                else:
                    zombie_since = None
            await anyio.sleep(delay)
            delay = min(delay * 1.5, _POLL_MAX)

    def _zombie_error(self, task_name: str, workers: list[_procfs.ProcessState], hung: float) -> ZombieWorkersError:
        deaths = "; ".join(f"pid {w.pid} {w.describe_exit()}" for w in workers)
        self.kill_group()
        return ZombieWorkersError(
            f"{task_name}: all {len(workers)} worker(s) died but the elastic agent (pid {self.pid}) hung for "
            f"{hung:.1f}s without reaping them ({deaths}). This is the agent deadlock seen when all workers die at "
            "once, e.g. SIGABRT after a CUDA OOM or an NCCL timeout; the job was stopped by the zombie watchdog"
        )

    def kill_group(self) -> None:
        """SIGKILL the launcher and every process left in its group (workers, their DataLoader children)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _group_alive(self) -> bool:
        if os.path.isdir("/proc"):
            return bool(_procfs.live_group_members(self.pid))
        try:
            os.killpg(self.pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    async def stop(self, grace: float = 5.0) -> None:
        """Stop gracefully (SIGTERM: the agent stops its workers), then kill what is left; waits until the group
        is gone so that nothing outlives the call. Idempotent."""
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            await poll_until(lambda: self.popen.poll() is not None, grace, 0.05)
        self.kill_group()
        await poll_until(lambda: self.popen.poll() is not None and not self._group_alive(), 5.0, 0.02)
        with _live_lock:
            _live.discard(self)

    def stop_now(self) -> None:
        """Synchronous kill (interpreter exit)."""
        self.kill_group()
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


@atexit.register
def _stop_all_at_exit() -> None:
    with _live_lock:
        launchers = list(_live)
        _live.clear()
    for launcher in launchers:
        launcher.stop_now()
