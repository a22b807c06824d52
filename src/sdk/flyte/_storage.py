"""Reading and writing task data by URI: local paths and ``file://`` here, object stores (``s3://``, ``gs://``,
``abfs://``...) through :mod:`flyte._objstore`, other schemes through a registered backend."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from urllib.parse import urlparse

Reader = Callable[[str], bytes]
Writer = Callable[[str, bytes], None]
_backends: dict[str, tuple[Reader, Writer]] = {}
_writes = itertools.count()


def register_scheme(scheme: str, read: Reader, write: Writer) -> None:
    """Serve ``scheme://`` URIs with ``read(uri) -> bytes`` and ``write(uri, data)``."""
    _backends[scheme] = (read, write)


def local_path(uri: str) -> str | None:
    """The filesystem path of a local path or ``file://`` URI, else None."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return parsed.path
    if parsed.scheme == "" or len(parsed.scheme) == 1:  # a plain path (or a Windows drive letter)
        return uri
    return None


def _backend(uri: str) -> tuple[Reader, Writer]:
    scheme = urlparse(uri).scheme
    if scheme in _backends:
        return _backends[scheme]
    from . import _objstore

    if scheme in _objstore.SCHEMES:
        return _objstore.read_bytes, _objstore.write_bytes
    raise ValueError(f"{uri!r}: no storage backend for {scheme}:// (local paths, file:// and the object stores "
                     f"{', '.join(sorted(_objstore.SCHEMES))} are built in; register others with "
                     "flyte._storage.register_scheme)")


def read_bytes(uri: str) -> bytes:
    path = local_path(uri)
    if path is not None:
        with open(path, "rb") as handle:
            return handle.read()
    return _backend(uri)[0](uri)


def write_bytes(uri: str, data: bytes) -> None:
    path = local_path(uri)
    if path is None:
        _backend(uri)[1](uri, data)
        return
    os.replace(_written_beside(path, data), path)


def _written_beside(path: str, data: bytes) -> str:
    """A temp file next to ``path`` holding ``data``, to be renamed or linked into place whole."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # Unique per write, not per process: two calls of one task write its pickle concurrently from worker threads,
    # and a shared temp name let one rename the other's file away (FileNotFoundError).
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.{next(_writes)}.tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
    return tmp


def create_bytes(uri: str, data: bytes) -> bool:
    """Write ``data`` only if nothing is at ``uri`` yet, atomically; whether this call wrote it (the first writer
    of several wins, and its content is never mixed with another's)."""
    path = local_path(uri)
    if path is None:
        from . import _objstore

        if urlparse(uri).scheme not in _backends and _objstore.is_object_uri(uri):
            return _objstore.create_bytes(uri, data)
        try:  # a registered backend has no conditional write: check, then write (an unknown scheme raises here)
            read_bytes(uri)
            return False
        except FileNotFoundError:
            write_bytes(uri, data)
            return True
    tmp = _written_beside(path, data)
    try:
        os.link(tmp, path)  # fails if the name exists, where os.replace would overwrite it
        return True
    except FileExistsError:
        return False
    except OSError:  # a volume without hard links: an exclusive create (a reader may see it half-written)
        try:
            with open(path, "xb") as handle:
                handle.write(data)
            return True
        except FileExistsError:
            return False
    finally:
        os.unlink(tmp)


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts]) if local_path(base) is None else os.path.join(base, *parts)


# The async twins, for the remote controller's event loop: object stores natively, files in a worker thread.
async def read_bytes_async(uri: str) -> bytes:
    from . import _objstore

    if _objstore.is_object_uri(uri):
        return await _objstore.read_bytes_async(uri)
    import anyio

    return await anyio.to_thread.run_sync(read_bytes, uri)


async def write_bytes_async(uri: str, data: bytes) -> None:
    from . import _objstore

    if _objstore.is_object_uri(uri):
        await _objstore.write_bytes_async(uri, data)
        return
    import anyio

    await anyio.to_thread.run_sync(write_bytes, uri, data)


async def exists_async(uri: str) -> bool:
    from . import _objstore

    if _objstore.is_object_uri(uri):
        return await _objstore.exists_async(uri)
    path = local_path(uri)
    if path is None:
        return False
    import anyio

    return await anyio.Path(path).exists()
