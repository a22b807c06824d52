"""``python .../_reaper.py <command...>``: run an MPI job's command as the leader of its session and reaper of all it
starts, and stop all of it on SIGTERM.

Open MPI's ``prterun`` may exit before its ranks when the job is torn down, and orphaned ranks go to init, which in
many containers (a Python program or the sandbox's agent as PID 1) never reaps them. This process is a child
subreaper (Linux): orphans come back to it, it reaps every one, and it exits only when nothing of the job is left,
with the command's exit code (or 128 + the signal that killed it). On SIGTERM/SIGINT (or when the task process dies)
it stops the ranks first, then the command, then SIGKILLs the rest after a grace period.

Standard library only, run by path (not ``-m``), so it starts in milliseconds without importing the SDK.
"""

from __future__ import annotations

import os
import signal
import sys
import time

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
GRACE_S = 3.0


def _prctl(option: int, value: int) -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(option, value)
    except Exception:
        pass


def session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes of session ``sid`` but its leader (Linux ``/proc``; elsewhere none are known)."""
    members: list[int] = []
    if not os.path.isdir("/proc"):
        return members
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == sid:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != b"Z":
            members.append(int(entry))
    return members


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def main(argv: list[str]) -> int:
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    stop_requested = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        child = os.posix_spawnp(argv[0], argv, os.environ)
    except OSError as exc:
        print(f"cannot run {argv[0]!r}: {exc.strerror}", file=sys.stderr)
        return 127
    me = os.getpid()
    code: int | None = None
    stop_started: float | None = None
    while True:
        while True:  # reap whatever ended: the command, and orphans handed to this subreaper
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if pid == 0:
                break
            if pid == child:
                code = os.waitstatus_to_exitcode(status)
        others = [pid for pid in session_members(me) if pid != child]
        if code is not None and not others:
            return code if code >= 0 else 128 - code
        if stop_requested and stop_started is None:
            stop_started = time.monotonic()
            _signal(others, signal.SIGTERM)  # the ranks first, while the command can still notice and reap them
            if code is None:
                _signal([child], signal.SIGTERM)
        elif code is not None and stop_started is None:
            stop_started = time.monotonic()  # the command is gone but left processes: stop them
            _signal(others, signal.SIGTERM)
        if stop_started is not None and time.monotonic() - stop_started > GRACE_S:
            _signal(others + ([child] if code is None else []), signal.SIGKILL)
        time.sleep(0.02)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
