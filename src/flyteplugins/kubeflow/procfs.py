"""Just enough of Linux ``/proc`` to watch a launcher's workers without extra dependencies.

A zombie's wait status is still readable (field 52 of ``/proc/<pid>/stat``, Linux >= 3.5), which tells how a worker
died even though its parent, the hung agent, never reaped it. Elsewhere the functions return "nothing known".
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

_HELPERS = (b"multiprocessing.resource_tracker", b"multiprocessing.forkserver")


@dataclass(frozen=True)
class ProcessState:
    pid: int
    state: str  # one letter: R running, S sleeping, Z zombie, T stopped, ...
    exit_status: int | None  # waitpid status, for zombies

    @property
    def is_zombie(self) -> bool:
        return self.state in ("Z", "X")

    def describe_exit(self) -> str:
        status = self.exit_status
        if status is None:
            return "exited"
        if status & 0x7F:
            number = status & 0x7F
            try:
                name = signal.Signals(number).name
            except ValueError:
                name = f"signal {number}"
            return f"killed by {name} (exit code -{number})"
        return f"exited with code {(status >> 8) & 0xFF}"


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode(errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing one.
    return raw[raw.rfind(")") + 2:].split()


def state_of(pid: int) -> ProcessState | None:
    fields = _stat_fields(pid)
    if not fields:
        return None
    exit_status = int(fields[49]) if len(fields) > 49 and fields[49].lstrip("-").isdigit() else None
    return ProcessState(pid=pid, state=fields[0], exit_status=exit_status)


def live_group_members(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that are not zombies (a killed orphan's zombie is its new parent's to
    reap and holds no resources)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
                members.append(int(entry))
    return members


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's), from ``/proc/<pid>/task/*/children`` or a scan of ``/proc``."""
    found: set[int] = set()
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    readable = False
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as handle:
                found.update(int(p) for p in handle.read().split())
            readable = True
        except OSError:
            continue
    if readable:
        return sorted(found)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and len(fields) > 1 and fields[1] == str(pid):
                found.add(int(entry))
    return sorted(found)


def is_helper(pid: int) -> bool:
    """Python's multiprocessing helper processes (resource tracker, fork server): not workers."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read()
    except OSError:
        return False
    return any(marker in cmdline for marker in _HELPERS)


def worker_states(launcher_pid: int) -> list[ProcessState]:
    """States of the launcher's worker processes (its children but multiprocessing helpers)."""
    states = []
    for pid in children(launcher_pid):
        state = state_of(pid)
        if state is not None and (state.is_zombie or not is_helper(pid)):
            states.append(state)
    return states
