"""The task process's side of a local MPI job: start ``mpirun`` under the job's reaper (``_reaper.py``, leader of
a new session), show its output while keeping the tail of its stderr (which names a rank that died), await it without
blocking the event loop, and stop every process of the session however the call ends.

``prterun`` (Open MPI 5's ``mpirun``) puts each rank in a process group of its own, so the job is found by session:
its ranks and daemons stay in the reaper's session.
"""

from __future__ import annotations

import atexit
import collections
import os
import signal
import subprocess
import sys
import threading
import time

import anyio

from flyteplugins.kubeflow.local import poll_until

from ._reaper import session_members

_POLL_MIN, _POLL_MAX = 0.01, 0.1
_TAIL_LINES = 200

_REAPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_reaper.py")

_live: set[MpirunProcess] = set()
_live_lock = threading.Lock()


class MpirunProcess:
    """One ``mpirun`` (or ``Launcher.command``) and everything it started, in its own session."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._reader = threading.Thread(target=self._tee, name=f"mpirun-{self.pid}-stderr", daemon=True)
        self._reader.start()
        with _live_lock:
            _live.add(self)

    @classmethod
    def start(cls, command: list[str], env: dict[str, str], cwd: str | None = None) -> MpirunProcess:
        popen = subprocess.Popen([sys.executable, _REAPER, *command], env=env, cwd=cwd, start_new_session=True,
                                 stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return cls(popen)

    def _tee(self) -> None:
        """Copy mpirun's stderr to ours line by line, keeping the tail for the error report."""
        assert self.popen.stderr is not None
        for raw in iter(self.popen.stderr.readline, b""):
            line = raw.decode(errors="replace")
            self.stderr_tail.append(line)
            try:
                sys.stderr.write(line)
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
        self.popen.stderr.close()

    def stderr_text(self) -> str:
        self._reader.join(timeout=5)
        return "".join(self.stderr_tail)

    async def wait(self, deadline: float | None = None) -> int:
        """mpirun's exit code; ``TimeoutError`` past ``deadline`` (monotonic), the caller then stops the job."""
        delay = _POLL_MIN
        while True:
            code = self.popen.poll()
            if code is not None:
                return code
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("deadline reached")
            await anyio.sleep(delay)
            delay = min(delay * 1.5, _POLL_MAX)

    def kill_session(self) -> None:
        """SIGKILL the reaper (the session's leader) and everything left in its session."""
        for pid in [self.pid, *session_members(self.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass  # already gone (the reaper is reaped by poll(): its pid is not reused before that)

    async def stop(self, grace: float = 8.0) -> None:
        """SIGTERM the reaper (it stops the ranks, then mpirun, then kills the rest and reaps all of it), then
        SIGKILL whatever is left of the session; wait until it is gone, so nothing outlives the call. Idempotent."""
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            await poll_until(lambda: self.popen.poll() is not None, grace, 0.02)
        self.kill_session()
        await poll_until(lambda: self.popen.poll() is not None and not session_members(self.pid), 5.0, 0.02)
        with _live_lock:
            _live.discard(self)

    def stop_now(self) -> None:
        """Synchronous kill (interpreter exit)."""
        self.kill_session()
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


@atexit.register
def _stop_all_at_exit() -> None:
    with _live_lock:
        jobs = list(_live)
        _live.clear()
    for job in jobs:
        job.stop_now()
