"""``flyte.io.Dir``: a directory passed between tasks by reference, with flyte-sdk's API."""

from __future__ import annotations

import fnmatch
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from ._file import File
from ._paths import is_object, local, new_path, offloaded, upload

T = TypeVar("T")


class Dir(Generic[T]):
    """A directory: ``path`` (a local path or URI), ``name``, ``format``, ``hash``.

    ``await Dir.from_local(path)`` (or ``from_local_sync``); ``async for f in d.walk()`` / ``d.walk_sync()`` yield its
    files as :class:`File`; ``list_files``, ``get_file(name)``, ``download``, ``exists`` have sync twins."""

    def __init__(self, path: str, name: str | None = None, format: str = "", hash: str | None = None) -> None:
        if not isinstance(path, (str, Path)) or not str(path):
            raise ValueError(f"Dir.path: expected a path or URI, got {path!r}")
        self.path = str(path)
        self.name = name if name is not None else Path(str(path)).name
        self.format = format
        self.hash = hash

    @classmethod
    def from_local_sync(cls, local_path: str | Path, remote_destination: str | None = None,
                        dir_cache_key: str | None = None, batch_size: int | None = None,
                        chunk_size: int | None = None, max_concurrency: int | None = None) -> Dir[T]:
        """A Dir of a local directory: kept where it is, or copied to ``remote_destination`` when given."""
        source = Path(local_path)
        if not source.is_dir():
            raise NotADirectoryError(f"Dir.from_local: {source} is not a directory")
        target = source
        if remote_destination is not None and is_object(remote_destination):
            return cls(upload(source, remote_destination), name=source.name, hash=dir_cache_key)
        if remote_destination is not None:
            target = local(remote_destination)
            shutil.copytree(source, target, dirs_exist_ok=True)
        return cls(str(target), name=source.name, hash=dir_cache_key)

    @classmethod
    async def from_local(cls, local_path: str | Path, remote_destination: str | None = None,
                         dir_cache_key: str | None = None, batch_size: int | None = None,
                         chunk_size: int | None = None, max_concurrency: int | None = None) -> Dir[T]:
        import anyio

        return await anyio.to_thread.run_sync(lambda: cls.from_local_sync(local_path, remote_destination,
                                                                          dir_cache_key))

    @classmethod
    def from_existing_remote(cls, remote_path: str, dir_cache_key: str | None = None) -> Dir[T]:
        return cls(remote_path, hash=dir_cache_key)

    @classmethod
    def new_remote(cls, dir_name: str | None = None, hash: str | None = None) -> Dir[T]:
        """A new, empty directory in the run's data directory."""
        path = new_path(dir_name or "dir")
        path.mkdir(parents=True, exist_ok=True)
        return cls(str(path), hash=hash)

    @classmethod
    def empty(cls) -> Dir[T]:
        return EmptyDir.new_remote()  # type: ignore[return-value]

    @property
    def is_empty(self) -> bool:
        path = local(self.path, "dir")
        return not path.exists() or not any(path.iterdir())

    def walk_sync(self, recursive: bool = True, file_pattern: str = "*",
                  max_depth: int | None = None) -> Iterator[File[Any]]:
        root = local(self.path, "dir")
        for path in sorted(root.rglob("*") if recursive else root.glob("*")):
            if not path.is_file() or not fnmatch.fnmatch(path.name, file_pattern):
                continue
            if max_depth is not None and len(path.relative_to(root).parts) > max_depth:
                continue
            yield File(str(path))

    async def walk(self, recursive: bool = True, max_depth: int | None = None) -> AsyncIterator[File[Any]]:
        for file in self.walk_sync(recursive=recursive, max_depth=max_depth):
            yield file

    def list_files_sync(self) -> list[File[Any]]:
        """The files directly in the directory."""
        return list(self.walk_sync(recursive=False))

    async def list_files(self) -> list[File[Any]]:
        return self.list_files_sync()

    def get_file_sync(self, file_name: str) -> File[Any] | None:
        path = local(self.path, "dir") / file_name
        return File(str(path)) if path.is_file() else None

    async def get_file(self, file_name: str) -> File[Any] | None:
        return self.get_file_sync(file_name)

    def download_sync(self, local_path: str | Path | None = None) -> str:
        path = local(self.path, "dir")
        if local_path is None:
            return str(path)
        shutil.copytree(path, Path(local_path), dirs_exist_ok=True)
        return str(local_path)

    async def download(self, local_path: str | Path | None = None) -> str:
        import anyio

        return await anyio.to_thread.run_sync(self.download_sync, local_path)

    def exists_sync(self) -> bool:
        if is_object(self.path):
            from .. import _objstore

            return bool(_objstore.list_keys(self.path.rstrip("/") + "/"))
        return local(self.path).is_dir()

    async def exists(self) -> bool:
        return self.exists_sync()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dir) and (self.path, self.name) == (other.path, other.name)

    def __hash__(self) -> int:
        return hash((self.path, self.name))

    def __fspath__(self) -> str:
        return str(local(self.path, "dir"))

    def __getstate__(self) -> dict[str, Any]:
        # Crossing to another machine in a remote run: a local tree travels as the objects it is uploaded to.
        return {**self.__dict__, "path": offloaded(self.path)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r}, name={self.name!r})"


class EmptyDir(Dir[Any]):
    """An empty directory (``Dir.empty()``)."""
