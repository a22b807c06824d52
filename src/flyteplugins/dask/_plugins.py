"""Code-bundle plugins: put the run's code on ``sys.path`` of every Dask node.

Both plugins carry the bundle's zip bytes, so a node needs no shared filesystem and no access to this machine. The
worker plugin is kept by the scheduler and set up on every worker, including workers that join later; the scheduler
plugin does the same for the scheduler process. Both use one fixed name, so registering a newer bundle replaces the
older one, and activating a bundle drops modules imported from the previous one (a worker then imports the new code
rather than keeping stale modules).

This module imports ``distributed``; the task module imports it only when a Dask task runs.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
import threading
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin, WorkerPlugin

PLUGIN_NAME = "flyte-code-bundle"

_lock = threading.Lock()
_active: dict[str, str] = {}  # role ("worker" / "scheduler") -> directory put on sys.path in this process


def activate(role: str, archive: bytes, base_dir: str) -> str:
    """Unpack ``archive`` under ``base_dir``, put it first on ``sys.path`` and retire the previous bundle of ``role``."""
    from flyte.extend import install_bundle

    os.makedirs(base_dir, exist_ok=True)
    path = install_bundle(archive, dest=base_dir)
    with _lock:
        previous = _active.get(role)
        _active[role] = path
    if previous and previous != path and previous not in _active.values():
        _forget(previous)
    return path


def deactivate(role: str) -> str | None:
    """Take ``role``'s bundle off ``sys.path`` and drop the modules imported from it. Returns its directory."""
    with _lock:
        path = _active.pop(role, None)
    if path and path not in _active.values():
        _forget(path)
    return path


def active_bundle(role: str) -> str | None:
    """The directory of ``role``'s active bundle in this process (for tests and diagnostics)."""
    return _active.get(role)


def _forget(path: str) -> None:
    while path in sys.path:
        sys.path.remove(path)
    prefix = os.path.join(path, "")
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and file.startswith(prefix):
            sys.modules.pop(name, None)
    importlib.invalidate_caches()


class CodeBundleWorkerPlugin(WorkerPlugin):
    """Unpacks the run's code bundle into the worker's local directory and imports from it."""

    name = PLUGIN_NAME
    idempotent = False

    def __init__(self, archive: bytes, digest: str) -> None:
        self.archive = archive
        self.digest = digest

    def setup(self, worker: Any) -> None:
        activate("worker", self.archive, os.path.join(worker.local_directory, "flyte-bundles"))

    def teardown(self, worker: Any) -> None:
        deactivate("worker")


class CodeBundleSchedulerPlugin(SchedulerPlugin):
    """Unpacks the run's code bundle on the scheduler, unless the scheduler runs in the process that built the
    bundle (the embedded cluster), where the code is importable already."""

    name = PLUGIN_NAME
    idempotent = False

    def __init__(self, archive: bytes, digest: str) -> None:
        self.archive = archive
        self.digest = digest
        self.origin = (socket.gethostname(), os.getpid())

    async def start(self, scheduler: Any) -> None:
        if self.origin == (socket.gethostname(), os.getpid()):
            return
        base = os.path.join(getattr(scheduler, "local_directory", None) or _fallback_dir(), "flyte-bundles")
        activate("scheduler", self.archive, base)

    async def close(self) -> None:
        deactivate("scheduler")


def _fallback_dir() -> str:
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"flyte-dask-scheduler-{os.getpid()}")
