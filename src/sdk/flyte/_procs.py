"""Finding and killing the processes an engine start left half-way (Linux ``/proc``; elsewhere nothing is found).

An engine start that is cancelled (a timeout, Ctrl-C) cannot be stopped from outside its thread, but the processes it
spawns can: engines are started with a unique temporary directory on their command line (a JVM's
``-Djava.io.tmpdir``, Ray's session dir), and killing every process of ours that names it makes the start fail fast.
"""

from __future__ import annotations

import os
import signal


def processes_naming(marker: str) -> list[int]:
    """Pids of this user's processes (other than this one) whose command line contains ``marker``."""
    needle = marker.encode()
    uid = os.getuid()
    found: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if needle in handle.read():
                    found.append(int(entry))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    return children


def kill_processes_naming(marker: str, sig: int = signal.SIGKILL) -> list[int]:
    """Send ``sig`` to every process :func:`processes_naming` finds and to all their descendants (which may have
    renamed themselves, as Ray's agents do); returns their pids. The tree is taken before anything is killed, so
    no child is orphaned out of reach."""
    pids = processes_naming(marker)
    if pids:
        children = _children_by_parent()
        pending, seen = list(pids), set(pids)
        while pending:
            for child in children.get(pending.pop(), []):
                if child not in seen and child != os.getpid():
                    seen.add(child)
                    pending.append(child)
        pids = sorted(seen)
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    return pids
