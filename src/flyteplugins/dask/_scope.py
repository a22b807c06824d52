"""Make a cluster "the" cluster while a task body runs, the way code written for Dask expects:

- ``distributed.Client()`` with no arguments connects to the address in Dask's ``scheduler-address`` setting. That
  setting is process-wide, so overlapping calls are counted: it names the most recently entered call's scheduler
  until that call leaves, and goes back to what it was when the last one leaves.
- ``get_client()`` and ``dask.compute`` use the current client, which Dask keeps in a context variable: each call (and
  the worker thread running a sync body, which copies the context) sees its own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_lock = threading.Lock()
_entered: list[str] = []  # scheduler addresses of the calls inside a scope, oldest first
_unset = object()
_saved: Any = _unset


@contextmanager
def cluster_scope(engine: Any) -> Iterator[None]:
    """Inside: ``Client()``, ``get_client()`` and ``dask.compute`` use ``engine``'s scheduler (a ``DaskEngine``)."""
    from distributed import Client

    before = {id(client) for client in list(Client._instances)}
    _enter(engine.scheduler_address)
    try:
        with _current(engine.client):
            yield
    finally:
        _leave(engine.scheduler_address)
        engine.adopt_task_clients(before)


@contextmanager
def _current(client: Any) -> Iterator[None]:
    try:
        from distributed.client import _current_client
    except ImportError:  # a distributed without the context variable: its public context manager does the same
        with client.as_current():
            yield
        return
    token = _current_client.set(client)
    try:
        yield
    finally:
        _current_client.reset(token)


def _enter(address: str) -> None:
    import dask

    global _saved
    with _lock:
        if not _entered:
            _saved = dask.config.get("scheduler-address", None)
        _entered.append(address)
        dask.config.set({"scheduler-address": address})


def _leave(address: str) -> None:
    import dask

    global _saved
    with _lock:
        _entered.reverse()
        _entered.remove(address)  # the most recent entry of this address
        _entered.reverse()
        if _entered:
            dask.config.set({"scheduler-address": _entered[-1]})
        else:
            dask.config.set({"scheduler-address": None if _saved is _unset else _saved})
            _saved = _unset
