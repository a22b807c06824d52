"""``flyte.storage``: flyte-sdk's helpers for reading and writing data by path or URI.

Local paths and ``file://`` work here; object-store URIs (``s3://``...) are for the Kubernetes tier's storage, and
raise ``NotImplementedError`` saying so. The ``Storage``/``S3``/``GCS``/``ABFS`` settings are kept for that tier.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from . import _storage
from .io._paths import is_remote, local

__all__ = ["ABFS", "GCS", "S3", "Storage", "exists", "exists_sync", "get", "get_random_local_directory",
           "get_random_local_path", "get_stream", "is_remote", "join", "open", "put", "put_stream"]


@dataclass
class Storage:
    retries: int = 3
    backoff: timedelta = timedelta(seconds=5)
    enable_debug: bool = False
    attach_execution_metadata: bool = True

    @classmethod
    def auto(cls) -> Storage:
        return cls()


@dataclass
class S3(Storage):
    endpoint: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    region: str | None = None
    addressing_style: str | None = None

    @classmethod
    def auto(cls, region: str | None = None) -> S3:  # type: ignore[override]
        return cls(region=region)

    @classmethod
    def for_sandbox(cls) -> S3:
        return cls(endpoint="http://localhost:4566", access_key_id="minio", secret_access_key="miniostorage")


@dataclass
class GCS(Storage):
    pass


@dataclass
class ABFS(Storage):
    account_name: str | None = None
    account_key: str | None = None
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = None


def join(*paths: str) -> str:
    return _storage.join(*paths)


def get_random_local_path(file_path_or_file_name: str | Path | None = None) -> Path:
    folder = Path(tempfile.gettempdir()) / "flyte-io" / uuid.uuid4().hex[:16]
    return folder / Path(file_path_or_file_name).name if file_path_or_file_name else folder


def get_random_local_directory() -> Path:
    path = get_random_local_path()
    path.mkdir(parents=True, exist_ok=True)
    return path


def exists_sync(path: str, **kwargs: Any) -> bool:
    return local(path).exists()


async def exists(path: str, **kwargs: Any) -> bool:
    return exists_sync(path)


def _copy(source: Path, target: Path, recursive: bool) -> None:
    if source.is_dir():
        if not recursive:
            raise IsADirectoryError(f"{source} is a directory: pass recursive=True")
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


async def get(from_path: str, to_path: str | Path | None = None, recursive: bool = False, **kwargs: Any) -> str:
    """Copy ``from_path`` to a local path (a fresh one by default); returns it."""
    target = Path(to_path) if to_path is not None else get_random_local_path(Path(str(from_path)).name)
    _copy(local(from_path), target, recursive)
    return str(target)


async def put(from_path: str, to_path: str | None = None, recursive: bool = False, batch_size: int | None = None,
              chunk_size: int | None = None, max_concurrency: int | None = None, **kwargs: Any) -> str:
    """Copy a local path to ``to_path`` (by default into the current run's data directory); returns it."""
    from .io._paths import new_path

    target = local(to_path) if to_path is not None else new_path(Path(from_path).name)
    _copy(Path(from_path), target, recursive)
    return str(target)


async def put_stream(data_iterable: AsyncIterable[bytes] | bytes, *, name: str | None = None,
                     to_path: str | None = None, size_hint: int | None = None, chunk_size: int | None = None,
                     max_concurrency: int | None = None, **kwargs: Any) -> str:
    from .io._paths import new_path

    target = local(to_path) if to_path is not None else new_path(name or "stream")
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as handle:
        if isinstance(data_iterable, (bytes, bytearray)):
            handle.write(data_iterable)
        else:
            async for chunk in data_iterable:
                handle.write(chunk)
    return str(target)


async def get_stream(path: str, chunk_size: int = 10 * 1024 * 1024, **kwargs: Any) -> AsyncIterator[bytes]:
    with local(path).open("rb") as handle:
        while chunk := handle.read(chunk_size):
            yield chunk


async def open(path: str, mode: str = "rb", **kwargs: Any) -> Any:  # noqa: A001 - flyte-sdk's name
    """An async file (``await f.read()``, ``await f.write(...)``)."""
    import anyio

    target = local(path)
    if any(flag in mode for flag in "wax"):
        target.parent.mkdir(parents=True, exist_ok=True)
    return await anyio.open_file(target, mode)
