"""A run's call data on a store that another machine reads (a Kubernetes pod, a Databricks cluster), and the
arguments of ``python -m flyte.runtime`` that read it there.

Layout: the code bundle by content under ``<storage>/bundles/`` (shared by every run), each pickled task by content
under ``<run prefix>/tasks/``, each attempt's inputs and outputs (or error document) under
``<run prefix>/<action>/<attempt>/``, offloaded data under ``<run prefix>/data/``. When the run ends its call data
goes and its ``data/`` stays, as a local run's data does.

The store is reached through an ``io`` object (read, write, exists, remove_all_but): :class:`StorageIO`, flyte's
storage layer (object stores, ``file://``), by default; a plugin may bring its own (Databricks volumes).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from typing import Any, Protocol

from . import _objstore, _storage


class StoreIO(Protocol):
    async def read(self, uri: str) -> bytes: ...

    async def write(self, uri: str, data: bytes) -> None: ...

    async def exists(self, uri: str) -> bool: ...

    async def remove_all_but(self, prefix: str, keep: str) -> None: ...


class StorageIO:
    """An object store or a shared folder, through flyte's storage layer."""

    async def read(self, uri: str) -> bytes:
        return await _storage.read_bytes_async(uri)

    async def write(self, uri: str, data: bytes) -> None:
        await _storage.write_bytes_async(uri, data)

    async def exists(self, uri: str) -> bool:
        return await _storage.exists_async(uri)

    async def remove_all_but(self, prefix: str, keep: str) -> None:
        """Everything under ``prefix`` but what is under ``prefix/keep``."""
        import anyio

        if _objstore.is_object_uri(prefix):
            await anyio.to_thread.run_sync(_objstore.delete_prefix, prefix + "/", f"{prefix}/{keep}/")
            return
        path = _storage.local_path(prefix)
        if path:
            await anyio.to_thread.run_sync(_remove_all_but, path, keep)

    async def close(self) -> None:
        return None  # holds nothing: the storage layer keeps its own clients


def bundle_location(storage_uri: str, digest: str) -> str:
    """Where a code bundle lives on the store: by content, shared by every run."""
    return f"{storage_uri}/bundles/{digest}.zip"


def task_location(run_prefix: str, pickled: bytes) -> str:
    """Where a run's pickled task lives on the store: by content."""
    return f"{run_prefix}/tasks/{hashlib.sha256(pickled).hexdigest()[:24]}.pkl"


def attempt_location(run_prefix: str, action_name: str, attempt: int) -> str:
    """The folder of one attempt's inputs (``inputs.msgpack``) and outputs (``outputs/``)."""
    return f"{run_prefix}/{action_name}/{attempt}"


def runtime_args(*, task_uri: str, attempt_uri: str, raw_data_path: str, run_name: str, action_name: str,
                 bundle_uri: str | None, attempt: int = 1) -> list[str]:
    """``python -m flyte.runtime``'s arguments for one attempt laid out by :func:`attempt_location`."""
    from .runtime import arguments

    return arguments(task=task_uri, inputs=f"{attempt_uri}/inputs.msgpack", outputs=f"{attempt_uri}/outputs",
                     raw_data_path=raw_data_path, run_name=run_name, action=action_name, bundle=bundle_uri,
                     attempt=attempt)


class RunStaging:
    """One run's call data on one store: the bundle uploaded once per content, each task pickled once, inputs per
    attempt, and the cleanup at the end."""

    def __init__(self, run: Any, storage_uri: str, run_prefix: str, io: StoreIO | None = None,
                 bundle_uri: str | None = None) -> None:
        self.run = run
        self.storage_uri = storage_uri
        self.run_prefix = run_prefix
        self.io: StoreIO = io if io is not None else StorageIO()
        self._bundle_uri = bundle_uri
        self._bundle_lock = asyncio.Lock()
        self._task_uris: dict[int, tuple[Any, str]] = {}

    async def bundle_uri(self) -> str | None:
        """The run's code bundle on the store (uploaded once per content); None when there is no user code to ship
        (every task pickled by value)."""
        async with self._bundle_lock:
            if self._bundle_uri is None:
                import anyio

                from ._bundle import build_bundle

                bundle = self.run.bundle
                if bundle is None:
                    bundle = await anyio.to_thread.run_sync(build_bundle, self.run.options.bundle_root)
                    self.run.bundle = bundle
                if not bundle:
                    self._bundle_uri = ""
                else:
                    uri = bundle_location(self.storage_uri, bundle.digest)
                    if not await self.io.exists(uri):
                        await self.io.write(uri, bundle.archive.read_bytes())
                    self._bundle_uri = uri
            return self._bundle_uri or None

    async def task_uri(self, task: Any) -> str:
        """The task, cloudpickled (by value when defined in ``__main__`` or a notebook), on the store."""
        # Keyed by identity, holding the task: a freed ``override()`` copy's id is soon another task's, and a bare
        # id key once gave a later call the earlier call's task.
        known = self._task_uris.get(id(task))
        if known is not None:
            return known[1]
        import cloudpickle

        data = cloudpickle.dumps(task)
        uri = task_location(self.run_prefix, data)
        await self.io.write(uri, data)
        self._task_uris[id(task)] = (task, uri)
        return uri

    async def write_inputs(self, action_name: str, attempt: int, encoded: dict[str, bytes]) -> str:
        """The attempt's inputs on the store; returns the attempt's folder."""
        import msgspec

        base = attempt_location(self.run_prefix, action_name, attempt)
        await self.io.write(f"{base}/inputs.msgpack", msgspec.msgpack.encode(encoded))
        return base

    async def remove_call_data(self) -> None:
        """The run's inputs, outputs and pickled tasks; its ``data/`` (what outputs may point to) stays."""
        await self.io.remove_all_but(self.run_prefix, "data")


def _remove_all_but(path: str, keep: str) -> None:
    if os.path.isdir(path):
        for entry in os.listdir(path):
            if entry != keep:
                shutil.rmtree(os.path.join(path, entry), ignore_errors=True)
