"""Output cache for ``cache="auto"``: keyed by task name, code version and encoded inputs, stored as files."""

from __future__ import annotations

import hashlib
import inspect
import marshal
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._task import TaskTemplate


def cache_dir(override: str | None = None) -> str:
    """``override``, else ``$FLYTE_CACHE_DIR``, else ``$XDG_CACHE_HOME/flyte-sdk/outputs`` (``~/.cache/...``)."""
    if override:
        return override
    if os.environ.get("FLYTE_CACHE_DIR"):
        return os.environ["FLYTE_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "flyte-sdk", "outputs")


def code_version(task: TaskTemplate) -> str:
    """The cache's version for ``task``: ``Cache(version_override=...)``, else a hash of the function's source."""
    if task.settings.cache.version:
        return task.settings.cache.version
    func = task.func
    try:
        material = inspect.getsource(func).encode()
    except (OSError, TypeError):
        material = marshal.dumps(func.__code__)
    return hashlib.sha256(material).hexdigest()[:16]


def cache_key(task: TaskTemplate, encoded_inputs: dict[str, bytes], inputs: dict[str, Any] | None = None) -> str:
    """Task name, code version, salt and inputs; a ``flyte.io`` value with a ``hash`` (a File made with
    ``hash_method``) counts by that hash, not by where it lives."""
    digest = hashlib.sha256()
    digest.update(task.name.encode())
    digest.update(code_version(task).encode())
    digest.update(task.settings.cache.salt.encode())
    ignored = set(task.settings.cache.ignored_inputs)
    for name in sorted(encoded_inputs):
        if name in ignored:
            continue
        digest.update(name.encode())
        content = encoded_inputs[name]
        content_hash = getattr((inputs or {}).get(name), "hash", None)
        if isinstance(content_hash, str) and type(inputs[name]).__module__.startswith("flyte.io"):  # type: ignore[index]
            content = b"hash:" + content_hash.encode()
        digest.update(len(content).to_bytes(8, "little"))
        digest.update(content)
    return digest.hexdigest()


def read(directory: str, key: str) -> bytes | None:
    try:
        with open(os.path.join(directory, key[:2], key), "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write(directory: str, key: str, data: bytes) -> None:
    folder = os.path.join(directory, key[:2])
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{key}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, os.path.join(folder, key))
