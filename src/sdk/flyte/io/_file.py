"""``flyte.io.File``: a file passed between tasks by reference (its path), with flyte-sdk's API."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

from ._paths import ensure_parent, is_object, local, new_path, offloaded, upload, write_staging

T = TypeVar("T")


class HashFunction:
    """A hash computed over the bytes as they are written or uploaded: ``HashFunction.from_fn(lambda data: ...)``
    where the function takes all the bytes and returns the hash text."""

    def __init__(self, fn: Callable[[Any], str]) -> None:
        self.fn = fn
        self._chunks: list[bytes] = []

    @classmethod
    def from_fn(cls, fn: Callable[[Any], str]) -> HashFunction:
        return cls(fn)

    def update(self, data: bytes) -> None:
        self._chunks.append(data)

    def result(self) -> str:
        return self.fn(b"".join(self._chunks))


def _hash_file(path: Path, method: Any) -> str | None:
    if method is None:
        return None
    if isinstance(method, str):  # flyte-sdk: a string is the hash itself, a cache key the caller computed
        return method
    data = path.read_bytes()
    if isinstance(method, HashFunction):
        return method.fn(data)
    raise TypeError(f"hash_method: expected a precomputed hash (str) or a HashFunction, got {type(method).__name__}")


class File(Generic[T]):
    """A file: ``path`` (a local path or URI), ``name``, ``format`` (``File[T]`` says what the content is), ``hash``.

    Make one with ``await File.from_local(path)`` (or ``from_local_sync``), ``File.new_remote()`` to write into,
    ``File.from_existing_remote(uri)``; read it with ``async with f.open("rb") as fh`` / ``with f.open_sync()``."""

    def __init__(self, path: str, name: str | None = None, format: str = "", hash: str | None = None,
                 hash_method: Any = None) -> None:
        if not isinstance(path, (str, Path)) or not str(path):
            raise ValueError(f"File.path: expected a path or URI, got {path!r}")
        self.path = str(path)
        self.name = name if name is not None else Path(str(path)).name
        self.format = format
        self.hash = hash
        self.hash_method = hash_method

    # -- making ---------------------------------------------------------------------------------------------------
    @classmethod
    def from_local_sync(cls, local_path: str | Path, remote_destination: str | None = None,
                        hash_method: Any = None, chunk_size: int | None = None,
                        max_concurrency: int | None = None) -> File[T]:
        """A File of a local file: kept where it is, or copied to ``remote_destination`` when given."""
        source = Path(local_path)
        if not source.is_file():
            raise FileNotFoundError(f"File.from_local: {source} is not a file")
        target = source
        if remote_destination is not None and is_object(remote_destination):
            return cls(upload(source, remote_destination), name=source.name, hash=_hash_file(source, hash_method),
                       hash_method=hash_method)
        if remote_destination is not None:
            target = local(remote_destination)
            ensure_parent(target)
            shutil.copyfile(source, target)
        return cls(str(target), name=source.name, hash=_hash_file(target, hash_method), hash_method=hash_method)

    @classmethod
    async def from_local(cls, local_path: str | Path, remote_destination: str | None = None,
                         hash_method: Any = None, chunk_size: int | None = None,
                         max_concurrency: int | None = None) -> File[T]:
        import anyio

        return await anyio.to_thread.run_sync(lambda: cls.from_local_sync(local_path, remote_destination,
                                                                          hash_method))

    @classmethod
    def from_existing_remote(cls, remote_path: str, file_cache_key: str | None = None) -> File[T]:
        return cls(remote_path, hash=file_cache_key)

    @classmethod
    def new_remote(cls, file_name: str | None = None, hash_method: Any = None) -> File[T]:
        """A new file in the run's data directory, to write with ``open("wb")``."""
        return cls(str(new_path(file_name or "file")), hash_method=hash_method)

    @classmethod
    def named_remote(cls, name: str) -> File[T]:
        """A file in the run's data directory with a name of your choosing (the same name gives the same file)."""
        from ._paths import data_root

        return cls(str(data_root() / "named" / name))

    # -- reading and writing --------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def open_sync(self, mode: str = "rb", block_size: int | None = None, cache_type: str = "readahead",
                  cache_options: Any = None, compression: Any = None, **kwargs: Any) -> Iterator[IO[Any]]:
        writing = any(flag in mode for flag in "wax+")
        path = local(self.path) if not (writing and is_object(self.path)) else write_staging(self.path)
        if writing:
            ensure_parent(path)
        with open(path, mode) as handle:
            yield handle
        if writing and is_object(self.path):
            upload(path, self.path)
        if self.hash_method is not None and "r" not in mode:
            self.hash = _hash_file(path, self.hash_method)

    @contextlib.asynccontextmanager
    async def open(self, mode: str = "rb", block_size: int | None = None, cache_type: str = "readahead",
                   cache_options: Any = None, compression: Any = None, **kwargs: Any) -> AsyncIterator[Any]:
        """``async with f.open("rb") as fh: data = await fh.read()`` (writes: ``await fh.write(b"...")``)."""
        import anyio

        writing = any(flag in mode for flag in "wax+")
        if writing and is_object(self.path):
            path = write_staging(self.path)
        else:
            path = await anyio.to_thread.run_sync(local, self.path)
        if writing:
            ensure_parent(path)
        async with await anyio.open_file(path, mode) as handle:
            yield handle
        if writing and is_object(self.path):
            await anyio.to_thread.run_sync(upload, path, self.path)
        if self.hash_method is not None and "r" not in mode:
            self.hash = _hash_file(path, self.hash_method)

    def download_sync(self, local_path: str | Path | None = None) -> str:
        """A local path of the content: the file itself, or a copy at ``local_path``."""
        path = local(self.path)
        if local_path is None:
            return str(path)
        target = Path(local_path)
        if target.is_dir():
            target = target / self.name
        ensure_parent(target)
        shutil.copyfile(path, target)
        return str(target)

    async def download(self, local_path: str | Path | None = None) -> str:
        import anyio

        return await anyio.to_thread.run_sync(self.download_sync, local_path)

    def exists_sync(self) -> bool:
        if is_object(self.path):
            from .. import _objstore

            try:
                _objstore.read_bytes(self.path)
            except FileNotFoundError:
                return False
            return True
        return local(self.path).exists()

    def __getstate__(self) -> dict[str, Any]:
        # Crossing to another machine in a remote run: a local file travels as the object it is uploaded to.
        return {**self.__dict__, "path": offloaded(self.path)}

    async def exists(self) -> bool:
        return self.exists_sync()

    # -- value semantics ------------------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, File) and (self.path, self.name, self.format) == (other.path, other.name,
                                                                                 other.format)

    def __hash__(self) -> int:
        return hash((self.path, self.name, self.format))

    def __fspath__(self) -> str:
        return str(local(self.path))

    def __repr__(self) -> str:
        return f"File(path={self.path!r}, name={self.name!r}" + (f", hash={self.hash!r})" if self.hash else ")")
