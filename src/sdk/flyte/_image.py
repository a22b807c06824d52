"""``flyte.Image``: a container image described as layers, flyte-sdk's builder API.

An Image is an immutable value: every ``with_*`` returns a new one. Nothing is built, pulled or read at import or at
definition (files a layer copies are read when the URI or the Dockerfile is asked for). ``uri`` is
``[registry/]name:tag`` with a tag derived from the content (the rendered Dockerfile and the bytes of every file it
copies), so equal content gives an equal URI and any change gives a new one. ``dockerfile()`` renders the Dockerfile
it stands for, to build with the user's own tools; the Kubernetes tier runs pods with ``uri``. Locally, tasks run in
this interpreter whatever their image.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shlex
import sys
from pathlib import Path
from typing import Any, Literal

Architecture = Literal["linux/amd64", "linux/arm64"]
# Where flyte-sdk's examples look for locally built wheels (``Image.clone(addl_layer=PythonWheels(DIST_FOLDER))``).
DIST_FOLDER = Path("dist")
_TOKEN = object()
_SDK_DISTRIBUTION = "flyte-distributed"


@dataclasses.dataclass(frozen=True)
class _Layer:
    kind: str
    args: tuple[tuple[str, Any], ...]

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.args).get(key, default)


def _layer(kind: str, **args: Any) -> _Layer:
    def freeze(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return tuple(freeze(v) for v in value)
        if isinstance(value, dict):
            return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
        if isinstance(value, Path):
            return str(value)
        return value

    return _Layer(kind, tuple((k, freeze(v)) for k, v in args.items() if v is not None))


def _python_version() -> tuple[int, int]:
    return sys.version_info[0], sys.version_info[1]


@dataclasses.dataclass(frozen=True)
class Image:
    """A container image for tasks; make one with a classmethod (``Image.from_debian_base()``, ``from_base(uri)``,
    ``from_dockerfile(...)``, ``from_uv_script(...)``), then add layers with ``with_*``."""

    base_image: str | None = None
    dockerfile: str | None = None  # path of a user's Dockerfile (from_dockerfile)
    registry: str | None = None
    name: str | None = None
    platform: tuple[str, ...] = ("linux/amd64",)
    python_version: tuple[int, int] = dataclasses.field(default_factory=_python_version)
    extendable: bool = False
    registry_secret: Any = None
    _layers: tuple[_Layer, ...] = ()
    _token: Any = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._token is not _TOKEN:
            raise TypeError("flyte.Image cannot be made directly: use Image.from_debian_base(), Image.from_base(uri), "
                            "Image.from_dockerfile(...) or Image.from_uv_script(...)")
        for arch in self.platform:
            if arch not in ("linux/amd64", "linux/arm64"):
                raise ValueError(f"Image.platform: {arch!r}; allowed: 'linux/amd64', 'linux/arm64'")

    # -- constructors ---------------------------------------------------------------------------------------------
    @classmethod
    def _make(cls, **fields: Any) -> Image:
        platform = fields.pop("platform", None)
        if platform is not None:
            fields["platform"] = (platform,) if isinstance(platform, str) else tuple(platform)
        python_version = fields.pop("python_version", None)
        if python_version is not None:
            fields["python_version"] = _parse_python_version(python_version)
        return cls(_token=_TOKEN, **fields)

    @classmethod
    def from_debian_base(cls, python_version: tuple[int, int] | str | None = None, flyte_version: str | None = None,
                         install_flyte: bool = True, registry: str | None = None, registry_secret: Any = None,
                         name: str | None = None, platform: tuple[str, ...] | str | None = None) -> Image:
        """A slim Debian image with Python (this interpreter's version by default) and this SDK installed."""
        image = cls._make(registry=registry, registry_secret=registry_secret, name=name or "flyte",
                          platform=platform, python_version=python_version)
        image = dataclasses.replace(image, base_image=f"python:{image.python_version[0]}.{image.python_version[1]}"
                                                      "-slim-bookworm")
        if install_flyte:
            from . import __version__

            spec = f"{_SDK_DISTRIBUTION}=={flyte_version or __version__}"
            image = image._with(_layer("pip", packages=(spec,)))
        return image

    @classmethod
    def from_base(cls, image_uri: str) -> Image:
        """An existing image, used as it is (its URI is ``image_uri``) or as the base of more layers."""
        if not isinstance(image_uri, str) or not image_uri:
            raise ValueError(f"Image.from_base(image_uri): expected an image reference, got {image_uri!r}")
        return cls._make(base_image=image_uri)

    @classmethod
    def from_dockerfile(cls, file: Path | str, registry: str, name: str,
                        platform: tuple[str, ...] | str | None = None) -> Image:
        """An image built from the user's own Dockerfile (read when the URI or the Dockerfile is asked for)."""
        return cls._make(dockerfile=str(file), registry=registry, name=name, platform=platform)

    @classmethod
    def from_ref_name(cls, name: str = "default") -> Image:
        """An image named in ``flyte.init*(images=...)`` or the config file's ``image.images``."""
        from ._initialize import initialized

        images = getattr(initialized(), "images", {}) or {}
        if name not in images:
            from .errors import ImageBuildError

            raise ImageBuildError(f"Image.from_ref_name({name!r}): no image of that name was configured; known: "
                                  f"{', '.join(sorted(images)) or 'none'}")
        return cls.from_base(images[name])

    @classmethod
    def from_uv_script(cls, script: Path | str, *, name: str, registry: str | None = None,
                       registry_secret: Any = None, python_version: tuple[int, int] | str | None = None,
                       index_url: str | None = None, extra_index_urls: Any = None, pre: bool = False,
                       extra_args: str | None = None, platform: tuple[str, ...] | str | None = None,
                       secret_mounts: Any = None) -> Image:
        """A Debian base with the dependencies a uv script declares (its ``# /// script`` block)."""
        image = cls.from_debian_base(python_version=python_version, registry=registry,
                                     registry_secret=registry_secret, name=name, platform=platform)
        return image._with(_layer("uv_script", script=str(script), index_url=index_url,
                                  extra_index_urls=extra_index_urls, pre=pre or None, extra_args=extra_args))

    # -- layers ---------------------------------------------------------------------------------------------------
    def _with(self, layer: _Layer) -> Image:
        return dataclasses.replace(self, _layers=(*self._layers, layer))

    def clone(self, registry: str | None = None, registry_secret: Any = None, name: str | None = None,
              base_image: str | None = None, python_version: tuple[int, int] | str | None = None,
              addl_layer: Any = None, extendable: bool | None = None,
              platform: tuple[str, ...] | str | None = None) -> Image:
        """A copy with some fields changed (and ``addl_layer`` added)."""
        changes: dict[str, Any] = {k: v for k, v in {"registry": registry, "registry_secret": registry_secret,
                                                      "name": name, "base_image": base_image,
                                                      "extendable": extendable}.items() if v is not None}
        if python_version is not None:
            changes["python_version"] = _parse_python_version(python_version)
        if platform is not None:
            changes["platform"] = (platform,) if isinstance(platform, str) else tuple(platform)
        image = dataclasses.replace(self, **changes)
        return image._with(addl_layer) if isinstance(addl_layer, _Layer) else image

    def with_pip_packages(self, *packages: str, index_url: str | None = None, extra_index_urls: Any = None,
                          pre: bool = False, extra_args: str | None = None, secret_mounts: Any = None) -> Image:
        if not packages:
            raise ValueError("Image.with_pip_packages: name at least one package")
        return self._with(_layer("pip", packages=packages, index_url=index_url, extra_index_urls=extra_index_urls,
                                 pre=pre or None, extra_args=extra_args))

    def with_requirements(self, file: Path | str, index_url: str | None = None, extra_index_urls: Any = None,
                          pre: bool = False, extra_args: str | None = None, secret_mounts: Any = None) -> Image:
        return self._with(_layer("requirements", file=str(file), index_url=index_url,
                                 extra_index_urls=extra_index_urls, pre=pre or None, extra_args=extra_args))

    def with_apt_packages(self, *packages: str, secret_mounts: Any = None) -> Image:
        if not packages:
            raise ValueError("Image.with_apt_packages: name at least one package")
        return self._with(_layer("apt", packages=packages))

    def with_commands(self, commands: list[str], secret_mounts: Any = None) -> Image:
        if isinstance(commands, str):
            commands = [commands]
        return self._with(_layer("commands", commands=tuple(commands)))

    def with_env_vars(self, env_vars: dict[str, str]) -> Image:
        for key, value in env_vars.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(f"Image.with_env_vars: keys and values must be strings, got {key!r}: {value!r}")
        return self._with(_layer("env", env_vars=env_vars))

    def with_workdir(self, workdir: str) -> Image:
        return self._with(_layer("workdir", workdir=workdir))

    def with_source_file(self, src: Path | list[Path], dst: str = ".") -> Image:
        sources = tuple(str(s) for s in (src if isinstance(src, (list, tuple)) else [src]))
        return self._with(_layer("copy", sources=sources, dst=dst))

    def with_source_folder(self, src: Path, dst: str = ".", copy_contents_only: bool = False) -> Image:
        return self._with(_layer("copy_folder", src=str(src), dst=dst, contents_only=copy_contents_only or None))

    def with_dockerignore(self, path: Path) -> Image:
        return self._with(_layer("dockerignore", path=str(path)))

    def with_code_bundle(self, copy_style: str = "loaded_modules", dst: str = ".") -> Image:
        if copy_style not in ("loaded_modules", "all"):
            raise ValueError(f"Image.with_code_bundle(copy_style=...): {copy_style!r}; allowed: 'loaded_modules', "
                             "'all'")
        return self._with(_layer("code_bundle", copy_style=copy_style, dst=dst))

    def with_uv_project(self, pyproject_file: Path | str, uvlock: Path | str | None = None,
                        index_url: str | None = None, extra_index_urls: Any = None, pre: bool = False,
                        extra_args: str | None = None, secret_mounts: Any = None,
                        project_install_mode: str = "dependencies_only") -> Image:
        _check_install_mode(project_install_mode)
        pyproject = Path(pyproject_file)
        lock = Path(uvlock) if uvlock is not None else pyproject.with_name("uv.lock")
        return self._with(_layer("uv_project", pyproject=str(pyproject), lock=str(lock), mode=project_install_mode,
                                 index_url=index_url, extra_index_urls=extra_index_urls, pre=pre or None,
                                 extra_args=extra_args))

    def with_poetry_project(self, pyproject_file: Path | str, poetry_lock: Path | str | None = None,
                            extra_args: str | None = None, secret_mounts: Any = None,
                            project_install_mode: str = "dependencies_only") -> Image:
        _check_install_mode(project_install_mode)
        pyproject = Path(pyproject_file)
        lock = Path(poetry_lock) if poetry_lock is not None else pyproject.with_name("poetry.lock")
        return self._with(_layer("poetry_project", pyproject=str(pyproject), lock=str(lock),
                                 mode=project_install_mode, extra_args=extra_args))

    def with_local_v2(self) -> Image:
        """flyte-sdk installs its local checkout; here: this SDK's version from the package index."""
        from . import __version__

        return self._with(_layer("pip", packages=(f"{_SDK_DISTRIBUTION}=={__version__}",)))

    def with_local_v2_plugins(self, plugins: str | list[str] | None = None) -> Image:
        """Plugins are extras of this SDK's one distribution: ``flyte-distributed[spark,ray]``."""
        from . import __version__

        names = [plugins] if isinstance(plugins, str) else list(plugins or ["all"])
        return self._with(_layer("pip", packages=(f"{_SDK_DISTRIBUTION}[{','.join(names)}]=={__version__}",)))

    def validate(self) -> None:
        """Raise if a file a layer copies is missing."""
        for path in self._copied_files():
            if not Path(path).exists():
                from .errors import ImageBuildError

                raise ImageBuildError(f"Image: {path} (copied into the image) does not exist")

    # -- outputs --------------------------------------------------------------------------------------------------
    @property
    def uri(self) -> str:
        """``[registry/]name:tag``, the tag derived from the content; a plain ``from_base`` image is its base."""
        if self.dockerfile is None and not self._layers and self.base_image is not None and self.name is None:
            return self.base_image
        digest = hashlib.sha256(self.dockerfile_text().encode())
        for path in self._copied_files():
            _hash_path(digest, Path(path))
        tag = f"py{self.python_version[0]}.{self.python_version[1]}-{digest.hexdigest()[:16]}"
        name = self.name or "flyte"
        return f"{self.registry.rstrip('/')}/{name}:{tag}" if self.registry else f"{name}:{tag}"

    def dockerfile_text(self) -> str:
        """The Dockerfile this image stands for (paths relative to the build context, the current directory)."""
        lines: list[str] = []
        if self.dockerfile is not None:
            lines.append(Path(self.dockerfile).read_text().rstrip())
        else:
            lines.append(f"FROM {self.base_image}")
        for layer in self._layers:
            lines.extend(_render(layer))
        return "\n".join(lines) + "\n"

    def _copied_files(self) -> list[str]:
        files: list[str] = []
        for layer in self._layers:
            if layer.kind == "requirements":
                files.append(layer.get("file"))
            elif layer.kind in ("uv_project", "poetry_project"):
                files += [layer.get("pyproject"), layer.get("lock")]
            elif layer.kind == "copy":
                files += list(layer.get("sources"))
            elif layer.kind == "copy_folder":
                files.append(layer.get("src"))
            elif layer.kind == "wheels":
                files.append(layer.get("wheel_dir"))
            elif layer.kind == "uv_script":
                files.append(layer.get("script"))
        return files


def PythonWheels(wheel_dir: Path | str, package_name: str | None = None, pre: bool = False,  # noqa: N802
                 **kwargs: Any) -> _Layer:
    """A layer installing the wheels in ``wheel_dir`` (flyte-sdk's, used as ``addl_layer``)."""
    return _layer("wheels", wheel_dir=str(wheel_dir), package_name=package_name, pre=pre or None)


def _check_install_mode(mode: str) -> None:
    if mode not in ("dependencies_only", "install_project"):
        raise ValueError(f"project_install_mode: {mode!r}; allowed: 'dependencies_only', 'install_project'")


def _parse_python_version(value: tuple[int, int] | str) -> tuple[int, int]:
    if isinstance(value, str):
        parts = value.split(".")
        if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
            raise ValueError(f"python_version: expected '3.12' or (3, 12), got {value!r}")
        return int(parts[0]), int(parts[1])
    if isinstance(value, tuple) and len(value) >= 2 and all(isinstance(v, int) for v in value[:2]):
        return value[0], value[1]
    raise ValueError(f"python_version: expected '3.12' or (3, 12), got {value!r}")


def _pip_options(layer: _Layer) -> str:
    options = []
    if layer.get("index_url"):
        options.append(f"--index-url {shlex.quote(layer.get('index_url'))}")
    for url in layer.get("extra_index_urls") or ():
        options.append(f"--extra-index-url {shlex.quote(url)}")
    if layer.get("pre"):
        options.append("--pre")
    if layer.get("extra_args"):
        options.append(layer.get("extra_args"))
    return "".join(f" {o}" for o in options)


def _render(layer: _Layer) -> list[str]:
    kind = layer.kind
    if kind == "pip":
        packages = " ".join(shlex.quote(p) for p in layer.get("packages"))
        return [f"RUN pip install --no-cache-dir{_pip_options(layer)} {packages}"]
    if kind == "requirements":
        file = layer.get("file")
        target = f"/tmp/requirements-{hashlib.sha256(file.encode()).hexdigest()[:8]}.txt"
        return [f"COPY {file} {target}", f"RUN pip install --no-cache-dir{_pip_options(layer)} -r {target}"]
    if kind == "apt":
        packages = " ".join(shlex.quote(p) for p in layer.get("packages"))
        return ["RUN apt-get update && apt-get install -y --no-install-recommends "
                f"{packages} && rm -rf /var/lib/apt/lists/*"]
    if kind == "commands":
        return [f"RUN {command}" for command in layer.get("commands")]
    if kind == "env":
        return [f"ENV {key}={shlex.quote(value)}" for key, value in layer.get("env_vars")]
    if kind == "workdir":
        return [f"WORKDIR {layer.get('workdir')}"]
    if kind == "copy":
        return [f"COPY {source} {layer.get('dst')}" for source in layer.get("sources")]
    if kind == "copy_folder":
        src = layer.get("src").rstrip("/")
        source = f"{src}/." if layer.get("contents_only") else src
        dst = layer.get("dst") if layer.get("contents_only") else f"{layer.get('dst').rstrip('/')}/{Path(src).name}"
        return [f"COPY {source} {dst}"]
    if kind == "wheels":
        target = "/tmp/wheels"
        package = layer.get("package_name")
        install = f"--find-links {target} {package}" if package else f"{target}/*.whl"
        return [f"COPY {layer.get('wheel_dir')} {target}",
                f"RUN pip install --no-cache-dir{' --pre' if layer.get('pre') else ''} {install}"]
    if kind == "dockerignore":
        return [f"# build with {layer.get('path')} as the context's .dockerignore"]
    if kind == "code_bundle":
        return [f"# the run's code bundle ({layer.get('copy_style')}) is copied to {layer.get('dst')} at build time"]
    if kind == "uv_project":
        install = "" if layer.get("mode") == "install_project" else " --no-install-project"
        return ["RUN pip install --no-cache-dir uv", f"COPY {layer.get('pyproject')} {layer.get('lock')} /app/",
                f"RUN cd /app && UV_PROJECT_ENVIRONMENT=/usr/local uv sync --frozen{install}"
                f"{_pip_options(layer)}"]
    if kind == "poetry_project":
        install = "" if layer.get("mode") == "install_project" else " --no-root"
        return ["RUN pip install --no-cache-dir poetry", f"COPY {layer.get('pyproject')} {layer.get('lock')} /app/",
                f"RUN cd /app && poetry config virtualenvs.create false && poetry install{install}"
                f"{' ' + layer.get('extra_args') if layer.get('extra_args') else ''}"]
    if kind == "uv_script":
        script = layer.get("script")
        return ["RUN pip install --no-cache-dir uv", f"COPY {script} /tmp/uv-script.py",
                "RUN uv pip install --system --no-cache -r /tmp/uv-script.py" + _pip_options(layer)]
    raise ValueError(f"unknown image layer {kind!r}")


def _hash_path(digest: Any, path: Path) -> None:
    """Feed a copied file's or folder's bytes into the tag (a missing one counts as missing, not as an error)."""
    if path.is_file():
        digest.update(path.read_bytes())
    elif path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(child.relative_to(path)).encode())
            digest.update(child.read_bytes())
    else:
        digest.update(b"<missing>" + str(path).encode())
