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


def kill_processes_naming(marker: str, sig: int = signal.SIGKILL) -> list[int]:
    """Send ``sig`` to every process :func:`processes_naming` finds; returns their pids."""
    pids = processes_naming(marker)
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    return pids
