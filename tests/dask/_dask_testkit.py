"""Helpers shared by the Dask tests (leak checks, port probes). Unique module name: the tests folders have no
``__init__.py``."""

from __future__ import annotations

import glob
import os
import socket
import tempfile
import time
from collections.abc import Callable
from typing import Any

import psutil

MARKER_ENV = "FLYTE_DASK_TEST_MARKER"
# multiprocessing's helper processes serve the whole interpreter (started once by the first spawn, reused, gone with
# it): not part of any cluster.
_INTERPRETER_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def dask_processes(marker: str | None = None, exclude: tuple[int, ...] = ()) -> list[psutil.Process]:
    """Live processes started while a Dask test module ran (they carry its marker), other than this one."""
    marker = marker or os.environ.get(MARKER_ENV)
    found = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == os.getpid() or proc.pid in exclude:
            continue
        try:
            if proc.environ().get(MARKER_ENV) != marker or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if not any(helper in " ".join(proc.cmdline()) for helper in _INTERPRETER_HELPERS):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it is truthy (returned) or ``timeout`` passes (returns False)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def port_open(address: str) -> bool:
    """Whether something accepts connections at ``tcp://host:port``."""
    host, port = address.removeprefix("tcp://").rsplit(":", 1)
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, int(port))) == 0


def leftover_dirs(run_name: str | None = None) -> list[str]:
    """The embedded clusters' scratch directories (and a run's temporary directories) still on disk."""
    tmp = tempfile.gettempdir()
    found = glob.glob(os.path.join(tmp, "flyte-dask-*"))
    if run_name:
        found += glob.glob(os.path.join(tmp, f"flyte-{run_name}-*"))
    return found


def assert_no_leaks(run_name: str | None = None, addresses: tuple[str, ...] = (), exclude: tuple[int, ...] = (),
                    timeout: float = 20.0) -> None:
    """No Dask process (but ``exclude``), no scratch or run directory, no listening scheduler port remains."""
    wait_until(lambda: not dask_processes(exclude=exclude) and not leftover_dirs(run_name), timeout)
    procs = dask_processes(exclude=exclude)
    assert not procs, f"Dask processes left behind: {[(p.pid, p.cmdline()) for p in procs]}"
    dirs = leftover_dirs(run_name)
    assert not dirs, f"directories left behind: {dirs}"
    for address in addresses:
        assert not port_open(address), f"the scheduler at {address} still accepts connections"
