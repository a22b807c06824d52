"""Code bundles: the user's code, packed so that another process (an engine's worker, a cluster pod) can import it.

A bundle is an importable tree: every file sits at its import path (``pkg/mod.py``), so a worker puts the tree (or
its zip, which Python imports from directly) on ``sys.path``. Two ways to choose the files:

- ``"loaded"`` (default): the modules the program has imported that are not part of Python, of an installed package,
  or of this SDK (the SDK is installed on workers). A package contributes all its files, since workers may import
  submodules the driver never did. With a ``root``, only modules under that directory count.
- ``"all"``: every file under ``root`` (default: the project root, the nearest folder above the main script or the
  working directory holding ``pyproject.toml`` or ``.git``) minus ``.gitignore`` patterns, ``__pycache__``,
  virtualenvs and ``.git``.

With ``"loaded"`` and no root, a user module outside the project (a sibling checkout on ``sys.path``) is user code
too: the workers cannot import it otherwise. Pass a root to narrow the bundle.

Bundles are content-hashed and cached (``~/.cache/flyte-sdk/bundles``), so an unchanged tree is packed once.
Tasks defined in ``__main__`` or a notebook are not in any file: plugins ship them by value with cloudpickle.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib
import os
import shutil
import site
import sys
import sysconfig
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

_IGNORED_DIRS = {".git", "__pycache__", ".venv", "venv", ".nox", ".tox", "node_modules", ".mypy_cache",
                 ".pytest_cache", ".ruff_cache", "build", "dist", ".ipynb_checkpoints"}
_SDK_PACKAGES = ("flyte", "flyteplugins")
_lock = threading.Lock()


@dataclass(frozen=True)
class CodeBundle:
    """A packed tree of user code. ``directory`` is the unpacked tree, ``archive`` its zip; both importable."""

    digest: str
    directory: Path
    archive: Path
    files: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.files)


def bundle_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(os.environ.get("FLYTE_BUNDLE_CACHE") or os.path.join(base, "flyte-sdk", "bundles"))


def _library_roots() -> list[str]:
    paths = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    paths.add(site.getusersitepackages() if hasattr(site, "getusersitepackages") else "")
    paths.update({sys.base_prefix + "/lib", sys.prefix + "/lib"})
    return sorted({os.path.realpath(p) + os.sep for p in paths if p})


def _is_library(path: str, library_roots: list[str]) -> bool:
    if "site-packages" in path or "dist-packages" in path:
        return True
    return any(path.startswith(root) for root in library_roots)


def loaded_user_files(root: str | None = None) -> dict[str, str]:
    """``{import path: file}`` of the user code currently imported (see module docstring)."""
    library_roots = _library_roots()
    root_real = os.path.realpath(root) + os.sep if root else None
    files: dict[str, str] = {}
    for name, module in list(sys.modules.items()):
        if name == "__main__" or name.split(".")[0] in _SDK_PACKAGES:
            continue
        file = getattr(module, "__file__", None)
        if not file or not file.endswith(".py"):
            continue
        path = os.path.realpath(file)
        if _is_library(path, library_roots) or (root_real and not path.startswith(root_real)):
            continue
        parts = name.split(".")
        is_package = os.path.basename(path) == "__init__.py"
        depth = len(parts) if is_package else len(parts) - 1
        import_root = Path(path).parent
        for _ in range(depth):
            import_root = import_root.parent
        top = import_root / parts[0]
        if top.is_dir():  # a package: take all of it
            for dirpath, dirnames, filenames in os.walk(top):
                dirnames[:] = [d for d in dirnames if d not in _IGNORED_DIRS]
                for filename in filenames:
                    if filename.endswith((".pyc", ".pyo")):
                        continue
                    full = os.path.join(dirpath, filename)
                    files[os.path.relpath(full, import_root)] = full
        else:
            files[os.path.relpath(path, import_root)] = path
    return files


def all_files(root: str) -> dict[str, str]:
    """Every file under ``root`` but ignored ones (``.gitignore`` patterns, caches, virtualenvs, ``.git``)."""
    patterns: list[str] = []
    gitignore = Path(root) / ".gitignore"
    if gitignore.exists():
        for line in gitignore.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "!")):
                patterns.append(line.rstrip("/").lstrip("/"))
    files: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames if d not in _IGNORED_DIRS and not _ignored(os.path.join(rel_dir, d), d, patterns)]
        for filename in filenames:
            rel = os.path.normpath(os.path.join(rel_dir, filename))
            if filename.endswith((".pyc", ".pyo")) or _ignored(rel, filename, patterns):
                continue
            files[rel] = os.path.join(dirpath, filename)
    return files


def _ignored(rel: str, name: str, patterns: list[str]) -> bool:
    rel = os.path.normpath(rel)
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(rel, p) for p in patterns)


def find_project_root(start: str | None = None) -> str:
    """The nearest folder at or above ``start`` (default: the main script's folder, else the working directory)
    that holds ``pyproject.toml`` or ``.git``; ``start`` itself when there is none."""
    if start is None:
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        start = os.path.dirname(os.path.abspath(main_file)) if main_file else os.getcwd()
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists() or (folder / ".git").exists():
            return str(folder)
    return str(here)


# A file at the bundle's root. Without it a bundle holding one package folder (``myproj/``) has a single top-level
# directory, which Ray strips from a remote ``working_dir`` zip: ``import myproj`` then fails on a RayJob's nodes.
_MARKER = ".flyte-bundle"


def build_bundle(root: str | None = None, include: str = "loaded") -> CodeBundle:
    """Pack the user's code (see module docstring); reuses the cached bundle when the content is unchanged."""
    if include not in ("loaded", "all"):
        raise ValueError(f"build_bundle(include=...): {include!r}; allowed: 'loaded', 'all'")
    if include == "all":
        files = all_files(root or find_project_root())
    else:
        files = loaded_user_files(root)
    digest = hashlib.sha256(_MARKER.encode())  # the layout is part of the content
    for rel in sorted(files):
        digest.update(rel.encode() + b"\0")
        with open(files[rel], "rb") as handle:
            digest.update(hashlib.sha256(handle.read()).digest())
    key = digest.hexdigest()[:24]
    cache = bundle_cache_dir()
    directory, archive = cache / key, cache / f"{key}.zip"
    with _lock:
        if not archive.exists():
            cache.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache))
            try:
                tree = staging / "tree"
                for rel, source in files.items():
                    target = tree / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, target)
                tree.mkdir(exist_ok=True)
                (tree / _MARKER).write_text(key)
                zip_path = staging / "bundle.zip"
                with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
                    zf.write(tree / _MARKER, _MARKER)
                    for rel in sorted(files):
                        zf.write(tree / rel, rel)
                if not directory.exists():
                    os.replace(tree, directory)
                os.replace(zip_path, archive)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return CodeBundle(digest=key, directory=directory, archive=archive, files=tuple(sorted(files)))


def install_bundle(source: str | os.PathLike[str] | bytes, dest: str | None = None) -> str:
    """Make a bundle importable in this process: a zip path, a zip's bytes, or an unpacked directory. Returns the
    directory put first on ``sys.path``. Idempotent."""
    if isinstance(source, bytes):
        digest = hashlib.sha256(source).hexdigest()[:24]
        directory = Path(dest or bundle_cache_dir()) / f"installed-{digest}"
        if not directory.exists():
            staging = Path(tempfile.mkdtemp(prefix=".installing-", dir=directory.parent if directory.parent.exists()
                                            else _mkdir(directory.parent)))
            import io

            with zipfile.ZipFile(io.BytesIO(source)) as zf:
                zf.extractall(staging)
            try:
                os.replace(staging, directory)
            except OSError:  # another process installed it first
                shutil.rmtree(staging, ignore_errors=True)
        path = str(directory)
    else:
        path = os.fspath(source)
        if path.endswith(".zip") and dest:
            with zipfile.ZipFile(path) as zf:
                zf.extractall(dest)
            path = dest
    if path not in sys.path:
        sys.path.insert(0, path)
        importlib.invalidate_caches()
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
