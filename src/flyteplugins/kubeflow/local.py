"""What the local jobs of the PyTorch and MPI plugins (and TensorFlow's supervisor) share: job files written
atomically, the call a worker process makes in the task's context, a worker's error document and the exception
rebuilt from it, polling process states, and dying with the parent. Loads no engine."""

from __future__ import annotations

import asyncio
import inspect
import os
import pickle
import signal
import time
import traceback
from collections.abc import Callable
from typing import Any

import cloudpickle


def write_atomically(path: str, data: bytes) -> None:
    staging = f"{path}.{os.getpid()}.tmp"
    with open(staging, "wb") as handle:
        handle.write(data)
    os.replace(staging, path)


def write_pickle(path: str, value: Any) -> None:
    write_atomically(path, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def read_pickle(path: str) -> Any:
    with open(path, "rb") as handle:
        return pickle.load(handle)


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux), so no worker outlives its job."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def call_in_worker(payload: dict[str, Any]) -> Any:
    """Call ``payload``'s function (sync or async) with its inputs, ``flyte.ctx()`` being the calling task's."""
    from flyte.extend import worker_context

    with worker_context(payload["context"], payload["data"]):
        func, args, kwargs = payload["func"], payload["args"], payload["kwargs"]
        if inspect.iscoroutinefunction(func):
            return asyncio.run(func(*args, **kwargs))
        return func(*args, **kwargs)


def exception_document(exc: BaseException, **identity: Any) -> dict[str, Any]:
    """A worker's report of ``exc``: where it ran (``identity``), type name, message, traceback, and the exception
    cloudpickled when it can be rebuilt (else None)."""
    try:
        pickled: bytes | None = cloudpickle.dumps(exc)
        cloudpickle.loads(pickled)
    except Exception:  # an exception that cannot be rebuilt is reported by type name, message and traceback
        pickled = None
    return {**identity, "pid": os.getpid(), "type_name": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "message": str(exc), "traceback": "".join(traceback.format_exception(exc)), "exception": pickled}


def exception_from_document(document: dict[str, Any], summary: str, where: str) -> BaseException:
    """The user's own exception from a worker's report, with ``summary`` and the worker's traceback (headed
    ``where``) as notes; a ``RemoteTaskError`` when it cannot be rebuilt."""
    from flyte.errors import RemoteTaskError

    rebuilt = None
    if document.get("exception") is not None:
        try:
            rebuilt = cloudpickle.loads(document["exception"])
        except Exception:
            rebuilt = None
    if isinstance(rebuilt, BaseException):
        rebuilt.add_note(summary)
        rebuilt.add_note(f"{where}:\n{document['traceback']}")
        return rebuilt
    return RemoteTaskError(document["type_name"], f"{document['message']} [{summary}]", document["traceback"])


async def poll_until(condition: Callable[[], bool], limit: float, period: float) -> None:
    """Poll ``condition`` (a process state: nothing to await on) until true or ``limit`` seconds passed."""
    import anyio

    end = time.monotonic() + limit
    while not condition():
        if time.monotonic() >= end:
            return
        await anyio.sleep(period)
