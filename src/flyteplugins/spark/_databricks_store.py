"""Where a Databricks call's data meets the cluster: a store both sides can read and write, laid out as every remote
call's is (``flyte._staging``, which the Kubernetes tier uses too): the code bundle by content under
``<storage>/bundles/``, the pickled task under ``<storage>/runs/<run>/tasks/``, the inputs and the outputs (or
error document) under ``<storage>/runs/<run>/<action>/<attempt>/``. The cluster runs ``python -m flyte.runtime``'s
file (``flyte-runtime.py``, copied once per content under ``<storage>/entrypoints/``) with those URIs.

The store is an object store (``s3://``...) or a folder both sides mount (``file://``), read and written here through
flyte's storage layer; or a Unity Catalog volume (``/Volumes/<catalog>/<schema>/<volume>/...``, also written
``dbfs:/Volumes/...``), which the cluster reads as files and this side through the workspace's Files API.

The run's call data goes when the run ends (its ``data/``, where offloaded outputs live, stays), as on Kubernetes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import sysconfig
import time
from dataclasses import dataclass
from typing import Any

from flyte import _objstore
from flyte._staging import RunStaging, StorageIO, runtime_args

from ._databricks_config import STORAGE_ENV, DatabricksV2

VOLUME = re.compile(r"^(dbfs:)?/Volumes/[^/]+/[^/]+/[^/]+(/.*)?$")

ENTRYPOINT_NAME = "flyte-runtime.py"
RESULT_GRACE_S = 10.0  # how long a finished run's outputs may take to be visible on the store
_ALLOWED = ("s3://", "s3a://", "gs://", "gcs://", "abfs://", "abfss://", "az://", "file://")
_ENTRYPOINT_FALLBACK = b"import sys\n\nfrom flyte.runtime import main\n\nif __name__ == '__main__':\n    sys.exit(main())\n"


def resolve_storage(config: DatabricksV2, run: Any) -> str:
    """The store of this call: ``DatabricksV2.storage``, ``$FLYTE_DATABRICKS_STORAGE``, the Kubernetes tier's
    ``storage``, or the run's raw data path when that is on an object store."""
    candidates = [(config.storage, f"{type(config).__name__}.storage"), (os.environ.get(STORAGE_ENV), STORAGE_ENV)]
    from flyte._k8s.settings import current

    settings = current()
    if settings is not None and settings.storage:
        candidates.append((settings.storage, "kubernetes.storage"))
    if _objstore.is_object_uri(run.raw_data_path):
        candidates.append((run.raw_data_path, "the run's raw_data_path"))
    for value, where in candidates:
        if value:
            if VOLUME.match(value):
                return value.removeprefix("dbfs:").rstrip("/")
            if not value.startswith(_ALLOWED):
                raise ValueError(f"{where}: {value!r} cannot carry a Databricks call's data; expected a URI the "
                                 f"cluster can read and write ({', '.join(_ALLOWED)}) or a volume path "
                                 "(/Volumes/<catalog>/<schema>/<volume>/...)")
            return value.rstrip("/")
    raise ValueError(
        f"{type(config).__name__}: no storage the Databricks cluster can read for the task's code, inputs and "
        f"outputs; set {type(config).__name__}(storage='s3://bucket/prefix'), the {STORAGE_ENV} environment variable, "
        "flyte.init(kubernetes={'storage': ...}), or with_runcontext(raw_data_path='s3://...')")


class VolumeIO:
    """A Unity Catalog volume, through the workspace's Files API (the cluster sees the same paths as files)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._folders: set[str] = set()

    async def read(self, uri: str) -> bytes:
        self.client.open()
        return await self.client.read_file(uri)  # type: ignore[no-any-return]

    async def write(self, uri: str, data: bytes) -> None:
        self.client.open()
        folder = uri.rsplit("/", 1)[0]
        if folder not in self._folders:
            await self.client.make_directory(folder)
            self._folders.add(folder)
        await self.client.write_file(uri, data)

    async def exists(self, uri: str) -> bool:
        self.client.open()
        return await self.client.file_exists(uri)  # type: ignore[no-any-return]

    async def remove_all_but(self, prefix: str, keep: str) -> None:
        self.client.open()

        async def remove(folder: str) -> None:
            for entry in await self.client.list_directory(folder):
                if entry.get("is_directory"):
                    await remove(entry["path"])
                    await self.client.delete_directory(entry["path"])
                else:
                    await self.client.delete_file(entry["path"])

        for entry in await self.client.list_directory(prefix):
            if entry.get("name", entry["path"].rsplit("/", 1)[-1]) == keep:
                continue
            if entry.get("is_directory"):
                await remove(entry["path"])
                await self.client.delete_directory(entry["path"])
            else:
                await self.client.delete_file(entry["path"])

    async def close(self) -> None:
        await self.client.close()


@dataclass(frozen=True)
class CallData:
    """The URIs of one attempt."""

    attempt: str
    raw_data_path: str
    task: str
    bundle: str | None
    entrypoint: str

    @property
    def outputs(self) -> str:
        return f"{self.attempt}/outputs"

    def runtime_args(self, run_name: str, action_name: str) -> list[str]:
        """``flyte.runtime``'s arguments for this attempt (the spark_python_task's parameters)."""
        return runtime_args(task_uri=self.task, attempt_uri=self.attempt, raw_data_path=self.raw_data_path,
                            run_name=run_name, action_name=action_name, bundle_uri=self.bundle)


class RunStore:
    """One run's data on one store (kept in the run's scratch, shared by its Databricks calls): the core's
    :class:`~flyte._staging.RunStaging`, plus the runtime's entry point file and the store's I/O kept open."""

    def __init__(self, storage: str, run: Any, io: StorageIO | VolumeIO) -> None:
        self.storage = storage
        self.run = run
        self.io = io
        self.run_prefix = f"{storage}/runs/{run.name}"
        self.staging = RunStaging(run, storage, self.run_prefix, io)
        self._entrypoint_uri: str | None = None

    @property
    def raw_data_path(self) -> str:
        """Where the cluster writes offloaded data (files, DataFrames): the run's own when it is on an object store,
        else the run's ``data/`` on this store (on a volume, a path this side cannot open as a file)."""
        raw = self.run.raw_data_path
        return raw if _objstore.is_object_uri(raw) else f"{self.run_prefix}/data"

    @property
    def inputs_raw_data_path(self) -> str:
        """Where inputs offloaded here (files, DataFrames) are uploaded: :attr:`raw_data_path`, except on a volume,
        which flyte's storage layer cannot write to from here (they stay in the run's own raw data path, which the
        cluster cannot read: such inputs need an object store)."""
        return self.run.raw_data_path if isinstance(self.io, VolumeIO) else self.raw_data_path

    @classmethod
    def of(cls, storage: str, run: Any, client: Any = None) -> RunStore:
        """The run's store at ``storage``; ``client`` (a DatabricksClient, not yet open) serves a volume."""
        key = f"databricks_store:{storage}"
        store = run.scratch.get(key)
        if store is None:
            io = VolumeIO(client) if storage.startswith("/Volumes/") else StorageIO()
            store = cls(storage, run, io)
            run.scratch[key] = store
            run.closers.append(store.close)
        return store  # type: ignore[no-any-return]

    async def close(self) -> None:
        try:
            if _owns_cleanup(self.storage, self.run):
                await self.remove_call_data()
        finally:
            await self.io.close()

    async def prepare(self, task: Any, action_name: str, attempt: int, encoded: dict[str, bytes],
                      applications_path: str | None) -> CallData:
        """Put the attempt's inputs, the pickled task, the bundle and the entry point on the store."""
        base, task_uri, bundle_uri, entry_uri = await asyncio.gather(
            self.staging.write_inputs(action_name, attempt, encoded), self.staging.task_uri(task),
            self.staging.bundle_uri(), self._entrypoint(applications_path))
        return CallData(attempt=base, raw_data_path=self.raw_data_path, task=task_uri, bundle=bundle_uri,
                        entrypoint=entry_uri)

    async def _entrypoint(self, applications_path: str | None) -> str:
        if applications_path:
            return applications_path
        if self._entrypoint_uri is None:
            data = entrypoint_source()
            uri = f"{self.storage}/entrypoints/{hashlib.sha256(data).hexdigest()[:16]}/{ENTRYPOINT_NAME}"
            if not await self.io.exists(uri):
                await self.io.write(uri, data)
            self._entrypoint_uri = uri
        return self._entrypoint_uri

    async def outcome(self, call: CallData, wait: bool) -> bytes | BaseException | None:
        """The attempt's encoded outputs, or the exception its error document describes; None if it left neither
        (``wait``: give a finished run's outputs a moment to become visible)."""
        from flyte.runtime import ERROR_FILE, OUTPUTS_FILE, error_from_document

        deadline = time.monotonic() + (RESULT_GRACE_S if wait else 0.0)
        while True:
            with contextlib.suppress(FileNotFoundError):
                return await self.io.read(f"{call.outputs}/{OUTPUTS_FILE}")
            with contextlib.suppress(FileNotFoundError):
                return error_from_document(await self.io.read(f"{call.outputs}/{ERROR_FILE}"))
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.2)

    async def remove_call_data(self) -> None:
        """The run's inputs, outputs and pickled tasks on the store; its ``data/`` stays (as a local run's)."""
        if self.run.options.keep_raw_data:
            return
        try:
            await self.staging.remove_call_data()
        except Exception as exc:  # noqa: BLE001 - the run's outcome stands; say what is left
            import logging

            logging.getLogger("flyteplugins.spark.databricks").warning(
                "could not remove the run's call data under %s: %s", self.run_prefix, exc)


def _owns_cleanup(storage: str, run: Any) -> bool:
    """A pod of a remote Kubernetes run shares its run's prefix on the tier's store: the run's caller removes it."""
    from flyte._k8s.settings import current
    from flyte.extend import in_remote_pod

    if not in_remote_pod():
        return True
    settings = current()
    return settings is None or not settings.storage or settings.storage_uri != storage


def entrypoint_source() -> bytes:
    """The SDK's ``flyte-runtime.py`` as installed in this environment's scripts folder (a three-line program that
    calls ``flyte.runtime.main``); the same program where it is not installed (a source checkout)."""
    path = os.path.join(sysconfig.get_path("scripts"), ENTRYPOINT_NAME)
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return _ENTRYPOINT_FALLBACK
