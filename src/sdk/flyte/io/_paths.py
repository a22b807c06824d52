"""Where ``flyte.io`` values made in a run are stored, and which paths this process can reach.

In a remote run the values cross machines: when a task's inputs or outputs are encoded for a run whose raw data
lives on an object store (:func:`offloading`), a File or Dir still pointing at a local path of this pod is uploaded
under that raw data path and travels as its URI. Reading one on the other side (``open``, ``download``, a frame's
``all``) fetches the object (or, for a Dir, every object under its prefix) into a local cache first.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from urllib.parse import urlparse

from .._storage import local_path

_offload_to: ContextVar[str | None] = ContextVar("flyte_io_offload_to", default=None)
_cache_root: str | None = None


def data_root() -> Path:
    """The current run's persistent data directory (outside a run: a temp dir of this process's own)."""
    from .._context import current_context
    from .._records import run_dir

    context = current_context.get()
    if context is None:
        return Path(tempfile.gettempdir()) / "flyte-io"
    return run_dir(context.run.name) / "data"


def new_path(name: str | None = None) -> Path:
    """A fresh location under :func:`data_root` (a directory holding ``name``, or a path named at random)."""
    folder = data_root() / uuid.uuid4().hex[:16]
    return folder / name if name else folder


def local(uri: str, kind: str = "file") -> Path:
    """The filesystem path of a local path or ``file://`` URI; an object-store URI is fetched into a local cache
    (``kind`` "file": one object; "dir": every object under the prefix)."""
    path = local_path(str(uri))
    if path is not None:
        return Path(path)
    from .. import _objstore

    if not _objstore.is_object_uri(str(uri)):
        raise NotImplementedError(f"{uri}: {urlparse(str(uri)).scheme}:// paths cannot be read here; local paths, "
                                  f"file:// and the object stores ({', '.join(sorted(_objstore.SCHEMES))}) can")
    return _materialize(str(uri), kind)


def is_object(uri: str) -> bool:
    from .. import _objstore

    return _objstore.is_object_uri(str(uri))


def _materialize(uri: str, kind: str) -> Path:
    from .. import _objstore

    target = Path(_cache()) / hashlib.sha256(uri.encode()).hexdigest()[:24] / (Path(urlparse(uri).path).name or "x")
    if kind == "dir":
        prefix = uri.rstrip("/") + "/"
        for item in _objstore.list_keys(prefix):
            destination = target / item[len(prefix):]
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(_objstore.read_bytes(item))
        target.mkdir(parents=True, exist_ok=True)
    elif not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.{os.getpid()}")
        staging.write_bytes(_objstore.read_bytes(uri))
        os.replace(staging, target)
    return target


def write_staging(uri: str) -> Path:
    """A fresh local file to write an object's content into before it is uploaded to ``uri``."""
    return Path(_cache()) / "writes" / uuid.uuid4().hex[:16] / (Path(urlparse(uri).path).name or "data")


def upload(source: Path, uri: str) -> str:
    """Copy a local file or directory tree to an object-store or ``file://`` URI; returns the URI."""
    from .. import _storage

    if source.is_dir():
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            _storage.write_bytes(f"{uri.rstrip('/')}/{file.relative_to(source).as_posix()}", file.read_bytes())
    else:
        _storage.write_bytes(uri, source.read_bytes())
    return uri


@contextlib.contextmanager
def offloading(raw_data_path: str) -> Iterator[None]:
    """While encoding values for a run whose raw data is on an object store, or a ``file://`` shared volume: local
    File/Dir paths elsewhere are uploaded (copied) there."""
    shared = is_object(raw_data_path) or raw_data_path.startswith("file://")
    token = _offload_to.set(raw_data_path if shared else None)
    try:
        yield
    finally:
        _offload_to.reset(token)


def offloaded(path: str) -> str:
    """``path`` as it should travel: unchanged, or (see :func:`offloading`) the URI it was uploaded to."""
    target = _offload_to.get()
    if target is None or is_object(path):
        return path
    source = Path(local_path(path) or path)
    if not source.exists():
        return path
    shared_dir = local_path(target)
    if shared_dir is not None and source.resolve().is_relative_to(Path(shared_dir).resolve()):
        return path  # already on the shared volume
    return upload(source, f"{target.rstrip('/')}/{uuid.uuid4().hex[:16]}/{source.name}")


def _cache() -> str:
    """A folder of this process for fetched objects, removed at exit."""
    global _cache_root
    if _cache_root is None:
        import shutil

        _cache_root = tempfile.mkdtemp(prefix="flyte-io-cache-")
        atexit.register(shutil.rmtree, _cache_root, True)
    return _cache_root


def is_remote(uri: str) -> bool:
    return local_path(str(uri)) is None


def ensure_parent(path: Path) -> None:
    os.makedirs(path.parent, exist_ok=True)
