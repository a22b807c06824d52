"""Helpers of the MPI plugin's tests, imported by name (``from _mpi_testkit import ...``)."""

from __future__ import annotations

import glob
import os
import tempfile
import time

import psutil

JOB_ENV = "FLYTE_MPI_JOB"
_NAMES = ("prterun", "prted", "mpirun", "orted")


def job_processes() -> list[psutil.Process]:
    """Every process of an MPI job (mpirun, its daemons and ranks, orphans included) but this one: found by the job
    marker in their environment, or by name."""
    found = []
    for proc in psutil.process_iter(["pid", "name"]):
        if proc.pid == os.getpid():
            continue
        try:
            if proc.info["name"] in _NAMES or JOB_ENV in proc.environ():
                if proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _interpreter_helper(process: psutil.Process) -> bool:
    try:
        return any("multiprocessing.resource_tracker" in part or "multiprocessing.forkserver" in part
                   for part in process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _session_dirs() -> set[str]:
    """Open MPI's session directories in the shared temp dir (ours go in the job's own TMPDIR)."""
    return {d for pattern in ("prte.*", "ompi.*", "openmpi-sessions-*")
            for d in glob.glob(os.path.join(tempfile.gettempdir(), pattern))}


_preexisting_sessions = _session_dirs()


def assert_no_leaks(run_prefix: str, wait: float = 5.0) -> None:
    end = time.monotonic() + wait
    while True:
        leaked = job_processes()
        children = [c for c in psutil.Process().children(recursive=True)
                    if c.status() != psutil.STATUS_ZOMBIE and not _interpreter_helper(c)]
        dirs = glob.glob(os.path.join(tempfile.gettempdir(), f"flyte-{run_prefix}*"))
        dirs += sorted(_session_dirs() - _preexisting_sessions)
        if not (leaked or children or dirs) or time.monotonic() > end:
            break
        time.sleep(0.1)
    assert not leaked, f"MPI processes left behind: {[(p.pid, p.cmdline()) for p in leaked]}"
    assert not children, f"child processes left behind: {[(c.pid, c.cmdline()) for c in children]}"
    assert not dirs, f"temporary directories left behind: {dirs}"
