"""The attach tier: a client of an existing scheduler (``Dask(scheduler_address=...)``).

The cluster belongs to someone else: stopping the engine removes this SDK's code-bundle plugins and closes its own
clients, and never closes the scheduler or its workers. The workers need this SDK installed (the plugins' classes
are imported there) and the same Python and Dask versions as this process.
"""

from __future__ import annotations

import anyio

from ._engine import CLOSE_TIMEOUT_S, DaskEngine, log

_CONNECT_TIMEOUT_S = 30


async def start_attached(address: str) -> DaskEngine:
    return await anyio.to_thread.run_sync(_start_blocking, address)


def _start_blocking(address: str) -> DaskEngine:
    from distributed import Client

    try:
        client = Client(address, set_as_default=False, timeout=_CONNECT_TIMEOUT_S)
    except OSError as exc:
        raise ConnectionError(f"Dask.scheduler_address: no Dask scheduler answered at {address} ({exc})") from exc
    try:
        has_dashboard = "dashboard" in client.scheduler_info().get("services", {})
        link = client.dashboard_link if has_dashboard else None
    except Exception:  # the link is a convenience
        link = None
    # The scheduler's own spelling of its address, which the task's argument-less Client() will be given.
    resolved = getattr(client.scheduler, "address", None) or address
    return DaskEngine(client=client, scheduler_address=resolved, dashboard_link=link)


def stop_attached(engine: DaskEngine) -> None:
    try:
        engine.remove_bundle()
        engine.close_task_clients()
    finally:
        try:
            engine.client.close(timeout=CLOSE_TIMEOUT_S)
        except Exception as exc:
            log.warning("closing the Dask client of %s failed: %s", engine.scheduler_address, exc)
