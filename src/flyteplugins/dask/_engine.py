"""The live Dask engine the pool holds: a client of a scheduler, and what is needed to take it down again.

The embedded tier (:mod:`._embedded`) owns the cluster behind it; the attach tier (:mod:`._attach`) only connects.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("flyteplugins.dask")

CLOSE_TIMEOUT_S = 30
DEAD_CLOSE_TIMEOUT_S = 2  # a cluster already shut down answers no close: don't wait the full timeout for it


@dataclass(eq=False)
class DaskEngine:
    """A client on a scheduler, shared by the calls that use the engine."""

    client: Any
    scheduler_address: str
    dashboard_link: str | None
    cluster: Any = None  # the embedded LocalCluster; None when attached
    local_directory: str | None = None  # embedded: the workers' and scheduler's scratch space, removed at stop
    worker_pids: tuple[int, ...] = ()
    bundle_digest: str | None = None  # the code bundle the nodes have
    # Clients that task bodies opened on this scheduler (seed-style ``Client()`` that is never closed): closed with
    # the engine, else they would retry a vanished scheduler for 30 s and hold up interpreter exit.
    task_clients: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)
    _bundle_lock: threading.Lock = field(default_factory=threading.Lock)

    def ship_bundle(self, digest: str, archive_path: str) -> None:
        """Register the code-bundle plugins for ``digest`` unless the nodes have it already (blocking)."""
        with self._bundle_lock:
            if self.bundle_digest == digest:
                return
            from ._plugins import CodeBundleSchedulerPlugin, CodeBundleWorkerPlugin

            with open(archive_path, "rb") as handle:
                archive = handle.read()
            self.client.register_plugin(CodeBundleSchedulerPlugin(archive, digest))
            replies = self.client.register_plugin(CodeBundleWorkerPlugin(archive, digest))
            failed = {worker: reply for worker, reply in (replies or {}).items()
                      if isinstance(reply, dict) and reply.get("status") != "OK"}
            if failed:
                worker, reply = next(iter(failed.items()))
                raise RuntimeError(f"Dask: the code bundle could not be installed on {len(failed)} worker(s), e.g. "
                                   f"{worker}: {reply.get('exception_text') or reply}")
            self.bundle_digest = digest

    def remove_bundle(self) -> None:
        """Take this SDK's plugins off the cluster (blocking, best effort: the cluster may be gone)."""
        if self.bundle_digest is None:
            return
        from ._plugins import PLUGIN_NAME, deactivate

        for step in (lambda: self.client.unregister_worker_plugin(PLUGIN_NAME),
                     lambda: self.client.unregister_scheduler_plugin(PLUGIN_NAME),
                     lambda: self.client.run_on_scheduler(deactivate, "scheduler")):
            try:
                step()
            except Exception as exc:
                log.debug("removing the code bundle from %s: %s", self.scheduler_address, exc)
        self.bundle_digest = None

    def adopt_task_clients(self, before: set[int]) -> None:
        """Remember the clients on this scheduler created since ``before`` (ids of ``Client._instances``)."""
        from distributed import Client

        for client in list(Client._instances):
            if id(client) in before or client is self.client:
                continue
            if getattr(getattr(client, "scheduler", None), "address", None) == self.scheduler_address:
                self.task_clients.add(client)

    def is_alive(self) -> bool:
        """False once the cluster is gone, e.g. after ``Client().shutdown()`` in a task body (which shuts the
        scheduler and workers down): the pool then starts a new one instead of handing out a dead client."""
        if self.client.status != "running":
            return False
        scheduler = getattr(self.cluster, "scheduler", None)  # embedded: the scheduler runs in this process
        status = getattr(scheduler, "status", None)
        return status is None or getattr(status, "name", str(status)) == "running"

    def cancel_futures(self) -> None:
        """Cancel every future that a client of this process holds on this scheduler (thread-safe, best effort).
        Futures of concurrent calls that share the engine are cancelled too: an interrupt stops the run's work."""
        from distributed import Client, Future

        for client in list(Client._instances):
            if getattr(getattr(client, "scheduler", None), "address", None) != self.scheduler_address:
                continue
            keys = list(getattr(client, "futures", {}))
            if not keys or client.status not in ("running", "connecting", "newly-created"):
                continue
            try:
                client.cancel([Future(key, client) for key in keys], force=True)
            except Exception as exc:
                log.debug("cancelling Dask futures on %s failed: %s", self.scheduler_address, exc)

    def close_task_clients(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        for client in list(self.task_clients):
            try:
                client.close(timeout=timeout)
            except Exception as exc:
                log.debug("closing a task's Dask client failed: %s", exc)
