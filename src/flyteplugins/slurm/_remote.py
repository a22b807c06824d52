"""A run's files on the cluster: one directory per run and login, ``<remote_dir>/<run>-<random>`` (mode 700), with
one subdirectory per call attempt (its script, inputs, outputs, job output) and the run's code bundle.

An attempt's directory goes when the attempt ends and the run's when the run ends, unless the config says
``keep_remote_dir=True`` or the run keeps its data (``with_runcontext(keep_raw_data=True)``).
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
import uuid
from typing import Any

import anyio

from ._connection import ClusterLink

log = logging.getLogger("flyteplugins.slurm")
REMOVE_DEADLINE_S = 60.0
_SPACE_KEY = "slurm_remote_spaces"


async def _mkdir(link: ClusterLink, path: str, private: bool = False) -> None:
    import asyncssh

    attrs = asyncssh.SFTPAttrs(permissions=0o700) if private else asyncssh.SFTPAttrs()

    async def make(sftp: Any) -> None:
        await sftp.makedirs(path, attrs=attrs, exist_ok=True)

    await link.with_sftp(make, f"creating {path}")


class RemoteDir:
    """A directory on the cluster and the transfers into and out of it."""

    def __init__(self, link: ClusterLink, path: str) -> None:
        self.link = link
        self.path = path

    def join(self, *names: str) -> str:
        return posixpath.join(self.path, *names)

    async def write(self, name: str, data: bytes, mode: int | None = None) -> str:
        path = self.join(name)

        async def write(sftp: Any) -> None:
            async with sftp.open(path, "wb", encoding=None) as handle:
                await handle.write(data)
            if mode is not None:
                await sftp.chmod(path, mode)

        await self.link.with_sftp(write, f"writing {path}")
        return path

    async def put(self, local: str, name: str, recurse: bool = False) -> str:
        path = self.join(name)

        async def put(sftp: Any) -> None:
            await sftp.put(local, path, recurse=recurse)

        await self.link.with_sftp(put, f"uploading {local} to {path}")
        return path

    async def read(self, name: str) -> bytes | None:
        """A file's content, or None when there is none."""
        return await read_file(self.link, self.join(name))

    async def remove(self) -> None:
        """Remove the directory and what it holds (over SFTP: no shell to start; shielded, with a deadline)."""
        import asyncssh

        async def remove(sftp: Any) -> None:
            try:
                await sftp.rmtree(self.path)
            except asyncssh.SFTPNoSuchFile:
                pass

        with anyio.CancelScope(shield=True), anyio.move_on_after(REMOVE_DEADLINE_S):
            try:
                await self.link.with_sftp(remove, f"removing {self.path}")
            except Exception as exc:  # noqa: BLE001 - cleanup must not hide the call's outcome
                log.warning("could not remove %s on %s: %s", self.path, self.link.ssh.describe(), exc)


async def read_file(link: ClusterLink, path: str) -> bytes | None:
    import asyncssh

    async def read(sftp: Any) -> bytes | None:
        try:
            async with sftp.open(path, "rb", encoding=None) as handle:
                return await handle.read()  # type: ignore[no-any-return]
        except asyncssh.SFTPNoSuchFile:
            return None

    return await link.with_sftp(read, f"reading {path}")


async def fetch(link: ClusterLink, remote: str, local: str, recurse: bool) -> None:
    """Copy a file (or, ``recurse``, a directory's content) from the cluster to ``local``."""

    async def get(sftp: Any) -> None:
        await sftp.get(remote, local, recurse=recurse)

    await link.with_sftp(get, f"fetching {remote}")


async def kind_of(link: ClusterLink, path: str) -> str | None:
    """"file", "dir", or None when ``path`` does not exist on the cluster."""
    import asyncssh

    async def stat(sftp: Any) -> str | None:
        try:
            if await sftp.isdir(path):
                return "dir"
            await sftp.stat(path)
            return "file"
        except asyncssh.SFTPNoSuchFile:
            return None

    return await link.with_sftp(stat, f"looking at {path}")


class RunSpace(RemoteDir):
    """The run's directory on one cluster: attempts' directories and uploaded bundles live under it."""

    def __init__(self, link: ClusterLink, path: str, keep: bool) -> None:
        super().__init__(link, path)
        self.keep = keep
        self.bundles: dict[str, str] = {}
        self._bundle_lock = anyio.Lock()

    async def attempt_dir(self, action_name: str, attempt: int) -> RemoteDir:
        directory = RemoteDir(self.link, self.join(f"{action_name}-{attempt}-{uuid.uuid4().hex[:6]}"))
        await _mkdir(self.link, directory.path)
        return directory

    async def bundle(self, archive: str, digest: str) -> str:
        """The run's code bundle on the cluster (uploaded once per run)."""
        async with self._bundle_lock:
            path = self.bundles.get(digest)
            if path is None:
                path = self.bundles[digest] = await self.put(archive, f"bundle-{digest}.zip")
            return path

    async def close(self) -> None:
        if not self.keep:
            await self.remove()


def resolve(home: str, path: str) -> str:
    """A cluster path as an absolute one: ``~/x`` and ``x`` are under the login's home."""
    if path.startswith("~/"):
        path = path[2:]
    elif path == "~":
        path = ""
    return posixpath.normpath(posixpath.join(home, path)) if not path.startswith("/") else posixpath.normpath(path)


async def run_space(run: Any, link: ClusterLink, remote_dir: str, keep: bool) -> RunSpace:
    """The run's directory on ``link``'s cluster, made on first use and removed when the run ends (unless kept)."""
    spaces: dict[Any, RunSpace] = run.scratch.setdefault(_SPACE_KEY, {})
    lock: anyio.Lock = run.scratch.setdefault(_SPACE_KEY + "_lock", anyio.Lock())
    key = (link.cluster, remote_dir)
    async with lock:
        space = spaces.get(key)
        if space is None:
            base = resolve(await link.home_dir(), remote_dir)
            await _mkdir(link, base, private=True)
            path = posixpath.join(base, f"{run.name}-{uuid.uuid4().hex[:6]}")
            await _mkdir(link, path, private=True)
            keep = keep or bool(getattr(run.options, "keep_raw_data", False))
            space = spaces[key] = RunSpace(link, path, keep)
            run.closers.append(space.close)
        elif keep:
            space.keep = True
    return space


@contextlib.asynccontextmanager
async def attempt_space(space: RunSpace, action_name: str, attempt: int, keep: bool) -> Any:
    """An attempt's directory, removed when the block ends unless kept."""
    directory = await space.attempt_dir(action_name, attempt)
    try:
        yield directory
    finally:
        if not (keep or space.keep):
            await directory.remove()
