"""Where ``flyte.io`` values made in a run are stored, and which paths this process can reach."""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlparse

from .._storage import local_path


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


def local(uri: str) -> Path:
    """The filesystem path of a local path or ``file://`` URI; other schemes need the Kubernetes tier's storage."""
    path = local_path(str(uri))
    if path is None:
        raise NotImplementedError(f"{uri}: {urlparse(str(uri)).scheme}:// paths are read and written by the "
                                  "Kubernetes tier's object storage; local runs use local paths and file://")
    return Path(path)


def is_remote(uri: str) -> bool:
    return local_path(str(uri)) is None


def ensure_parent(path: Path) -> None:
    os.makedirs(path.parent, exist_ok=True)
