"""Helpers of the PyTorch plugin's tests, imported by name (``from _torch_testkit import ...``): a module of its
own, since ``conftest`` names whichever directory's conftest pytest loaded last."""

from __future__ import annotations

import glob
import os
import tempfile
import time

import psutil

JOB_ENV = "FLYTE_PYTORCH_JOB"
# torch elastic's default log directories that existed before this session (not ours to judge).
_preexisting = set(glob.glob(os.path.join(tempfile.gettempdir(), "torchelastic_*")))
# torch.multiprocessing keeps a failed worker's traceback in pytorch-errorfile-*.pickle in the temp dir.
_preexisting |= set(glob.glob(os.path.join(tempfile.gettempdir(), "pytorch-errorfile-*")))


def job_processes() -> list[psutil.Process]:
    """Every process carrying a job marker (launchers and workers, orphans included), but this one."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == os.getpid():
            continue
        try:
            if JOB_ENV in proc.environ():
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _interpreter_helper(process: psutil.Process) -> bool:
    """multiprocessing's resource tracker: started once per interpreter by whichever test first needs it (a Dask
    LocalCluster), it lives as long as the test process and is no engine's worker."""
    try:
        return any("multiprocessing.resource_tracker" in part or "multiprocessing.forkserver" in part
                   for part in process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def assert_no_leaks(run_prefix: str, wait: float = 5.0) -> None:
    end = time.monotonic() + wait
    while True:
        leaked = [p for p in job_processes() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        children = [c for c in psutil.Process().children(recursive=True)
                    if c.status() != psutil.STATUS_ZOMBIE and not _interpreter_helper(c)]
        dirs = glob.glob(os.path.join(tempfile.gettempdir(), f"flyte-{run_prefix}*"))
        dirs += [d for pattern in ("torchelastic_*", "pytorch-errorfile-*")
                 for d in glob.glob(os.path.join(tempfile.gettempdir(), pattern)) if d not in _preexisting]
        if not (leaked or children or dirs) or time.monotonic() > end:
            break
        time.sleep(0.1)
    assert not leaked, f"torch processes left behind: {[(p.pid, p.cmdline()) for p in leaked]}"
    assert not children, f"child processes left behind: {[(c.pid, c.cmdline()) for c in children]}"
    assert not dirs, f"temporary directories left behind: {dirs}"
