"""Fixtures for the Ray plugin's tests: quiet Ray, and checks that Ray leaves no process or temp dir behind."""

from __future__ import annotations

import glob
import os
import tempfile
import time

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Ray 2.5x+ puts token authentication on local instances and `ray start` clusters; a driver connecting to an
# explicit address sends the token only in token mode, which Ray reads once, before anything here imports it.
os.environ.setdefault("RAY_AUTH_MODE", "token")

# Process names (or command-line parts) of everything a local Ray instance runs.
RAY_PROCESS_MARKERS = ("raylet", "gcs_server", "ray::", "default_worker.py", "dashboard", "runtime_env_agent",
                       "log_monitor.py", "monitor.py", "ray_process_reaper", "setup_worker.py", "ray start")


def is_ray_process(proc) -> bool:
    import psutil

    try:
        if proc.status() == psutil.STATUS_ZOMBIE:  # exited, waiting to be reaped: nothing runs
            return False
        text = " ".join(proc.cmdline()) + " " + proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return any(marker in text for marker in RAY_PROCESS_MARKERS)


def ray_descendants() -> list:
    """Live Ray processes below this test process."""
    import psutil

    return [p for p in psutil.Process().children(recursive=True) if is_ray_process(p)]


def snapshot(pids: list[int] | None = None) -> list[tuple[int, float]]:
    """(pid, create_time) of this process's Ray descendants, to check later that exactly these are gone."""
    import psutil

    out = []
    for proc in ray_descendants() if pids is None else [psutil.Process(p) for p in pids]:
        try:
            out.append((proc.pid, proc.create_time()))
        except psutil.NoSuchProcess:
            pass
    return out


def still_running(procs: list[tuple[int, float]], wait_s: float = 15.0) -> list[str]:
    """Of ``procs``, those still alive (not zombies) after up to ``wait_s`` seconds."""
    import psutil

    deadline = time.monotonic() + wait_s
    while True:
        alive = []
        for pid, created in procs:
            try:
                proc = psutil.Process(pid)
                if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{pid} {' '.join(proc.cmdline())[:120]}")
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def ray_temp_dirs() -> set[str]:
    """Ray instances' temp dirs, and multiprocessing's ``pymp-*`` dirs but this process's own (Ray's dashboard
    leaves one when it is killed, unless its TMPDIR is inside the instance's temp dir)."""
    import multiprocessing

    own = multiprocessing.current_process()._config.get("tempdir")
    pymp = {d for base in {tempfile.gettempdir(), "/tmp"} for d in glob.glob(os.path.join(base, "pymp-*")) if d != own}
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "flyte-ray-*"))) | set(glob.glob("/tmp/flyte-ray-*")) | pymp


class LeakCheck:
    """Collects the Ray processes seen while a run used Ray; the fixture checks afterwards that all are gone."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float]] = []

    def record(self) -> int:
        """Snapshot the Ray processes below this process now (call it inside a task); returns how many."""
        found = snapshot()
        self.seen.extend(found)
        return len(found)


@pytest.fixture
def no_ray_leak():
    """Asserts after the test that no Ray process below this process and no new Ray temp dir remains."""
    before_dirs = ray_temp_dirs()
    default_dir_existed = os.path.exists(os.path.join(tempfile.gettempdir(), "ray"))
    assert not ray_descendants(), "a Ray process was already running before the test"
    check = LeakCheck()
    yield check
    import ray

    assert not ray.is_initialized(), "the driver is still connected to Ray after the run"
    leftover = still_running(check.seen) + [f"{p.pid} {' '.join(p.cmdline())[:120]}" for p in ray_descendants()]
    assert not leftover, f"Ray processes left after the run: {leftover}"
    new_dirs = ray_temp_dirs() - before_dirs
    assert not new_dirs, f"Ray temp dirs left after the run: {sorted(new_dirs)}"
    if not default_dir_existed:
        assert not os.path.exists(os.path.join(tempfile.gettempdir(), "ray")), "Ray wrote to the default /tmp/ray"
