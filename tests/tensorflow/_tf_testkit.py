"""Helpers of the TensorFlow plugin's tests, imported by name (``from _tf_testkit import ...``): a module of its own,
since ``conftest`` names whichever directory's conftest pytest loaded last."""

from __future__ import annotations

import glob
import json
import os
import tempfile
import time
from pathlib import Path

import psutil

JOB_ENV = "FLYTE_TENSORFLOW_JOB"
# TensorFlow on CPU announces itself on every import (oneDNN, absl); the replicas inherit these.
QUIET_TF = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}


def job_processes() -> list[psutil.Process]:
    """Every process carrying a job marker (replicas and their children, orphans included), but this one."""
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
    """multiprocessing's resource tracker: started once per interpreter by whichever test first needs it, it lives as
    long as the test process and is no replica."""
    try:
        return any("multiprocessing.resource_tracker" in part or "multiprocessing.forkserver" in part
                   for part in process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def assert_no_leaks(run_prefix: str, wait: float = 5.0) -> None:
    """No replica process (by its job marker), no child of this process, no temporary directory of the run."""
    end = time.monotonic() + wait
    while True:
        leaked = [p for p in job_processes() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        children = [c for c in psutil.Process().children(recursive=True)
                    if c.status() != psutil.STATUS_ZOMBIE and not _interpreter_helper(c)]
        dirs = glob.glob(os.path.join(tempfile.gettempdir(), f"flyte-{run_prefix}*"))
        if not (leaked or children or dirs) or time.monotonic() > end:
            break
        time.sleep(0.1)
    assert not leaked, f"replica processes left behind: {[(p.pid, p.cmdline()) for p in leaked]}"
    assert not children, f"child processes left behind: {[(c.pid, c.cmdline()) for c in children]}"
    assert not dirs, f"temporary directories left behind: {dirs}"


def record(directory: str, **extra: object) -> None:
    """In a replica: write what it was given (TF_CONFIG, its flyte.ctx() data, pid) to ``<type>-<index>.json``."""
    import flyte

    data = flyte.ctx().data
    kind, index = data["tf_replica_type"], data["tf_replica_index"]
    entry = {"type": kind, "index": index, "tf_config": os.environ.get("TF_CONFIG"), "ctx_tf_config":
             data["tf_config"], "primary": data["tf_primary"], "pid": os.getpid(), **extra}
    # Written aside and renamed into place: a replica stopped mid-write (the job ended, or the test's own kill)
    # leaves no half-written record for ``records`` to trip over.
    final = Path(directory, f"{kind}-{index}.json")
    partial = final.with_suffix(".partial")
    partial.write_text(json.dumps(entry))
    os.replace(partial, final)


def records(directory: str | Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(Path(directory).glob("*.json"))}


def wait_for_records(directory: str | Path, count: int, timeout: float = 120) -> dict[str, dict]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = records(directory)
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{count} replicas did not start within {timeout}s: {sorted(records(directory))}")


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
