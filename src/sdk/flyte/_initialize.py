"""``flyte.init`` and ``flyte.init_from_config``: where runs go, read from arguments or flyte-sdk's config file.

Programs written for flyte-sdk start with ``flyte.init_from_config()``. Without a config file that is local mode,
silently, as in flyte-sdk. With one, its settings are kept (``initialized()``) for the parts that use them: the
Kubernetes tier reads its cluster and storage settings; keys nothing here uses are accepted and kept. A run never
needs ``init``: without it, runs are local.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._syncify import sync_and_aio
from .errors import InitializationError

# flyte.logger: what task code logs for people to read, shown on stderr at INFO as flyte-sdk shows it.
logger = logging.getLogger("flyte.user")
logger.setLevel(logging.INFO)
if not logger.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    logger.addHandler(_handler)
    logger.propagate = False
system_logger = logging.getLogger("flyte")


@dataclass(frozen=True)
class InitConfig:
    """What ``flyte.init*`` was told. ``source`` is the config file's path (None: arguments only)."""

    org: str | None = None
    project: str | None = None
    domain: str | None = None
    root_dir: Path | None = None
    endpoint: str | None = None
    storage: Any = None
    images: dict[str, str] = field(default_factory=dict)
    image_builder: str = "local"
    source: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # the whole config file, for the parts that read it
    kubernetes: Any = None  # flyte._k8s.settings.KubernetesSettings: where remote runs go


_current: InitConfig | None = None


def initialized() -> InitConfig | None:
    """The settings of the last ``flyte.init*`` call in this process, or None."""
    return _current


@sync_and_aio
def init(org: str | None = None, project: str | None = None, domain: str | None = None,
         root_dir: str | Path | None = None, log_level: int | str | None = None, log_format: str | None = None,
         reset_root_logger: bool = False, user_log_level: int | str | None = None, endpoint: str | None = None,
         headless: bool = False, insecure: bool = False, insecure_skip_verify: bool = False,
         ca_cert_file_path: str | None = None, auth_type: str = "Pkce", command: list[str] | None = None,
         proxy_command: list[str] | None = None, api_key: str | None = None, client_id: str | None = None,
         client_credentials_secret: str | None = None, auth_client_config: Any = None, rpc_retries: int = 3,
         http_proxy_url: str | None = None, disable_keyring: bool = False, storage: Any = None,
         batch_size: int = 1000, image_builder: str = "local", images: Any = None, image_registry: str | None = None,
         source_config_path: str | Path | None = None, sync_local_sys_paths: bool = True,
         load_plugin_type_transformers: bool = True, local_persistence: bool = False, local_tracked: bool = False,
         local_tracked_strict: bool = False, scopes: list[str] | None = None, kubernetes: Any = None) -> None:
    """Set where runs go and who runs them, with flyte-sdk 2.x's parameters. Runs here are local, or on a
    Kubernetes cluster with ``kubernetes={...}`` (the keys of the config file's ``kubernetes`` section: see
    ``flyte._k8s.settings``); an ``endpoint`` of a Flyte backend is recorded, not connected to. ``log_level``
    sets the ``flyte`` logger's level, ``user_log_level`` that of ``flyte.logger``."""
    global _current
    _set_levels(log_level, user_log_level)
    _current = InitConfig(org=org, project=project, domain=domain, root_dir=Path(root_dir) if root_dir else None,
                          endpoint=endpoint, storage=storage, images=_image_map(images),
                          image_builder=image_builder or "local",
                          source=str(source_config_path) if source_config_path else None,
                          kubernetes=_kubernetes(kubernetes, "flyte.init(kubernetes=...)"))


@sync_and_aio
def init_from_config(path_or_config: str | Path | dict[str, Any] | None = None, root_dir: str | Path | None = None,
                     log_level: int | str | None = None, log_format: str = "console",
                     user_log_level: int | str | None = None, org: str | None = None, project: str | None = None,
                     domain: str | None = None, storage: Any = None, batch_size: int = 1000,
                     image_builder: str | None = None, images: tuple[str, ...] | None = None,
                     sync_local_sys_paths: bool = True) -> None:
    """Initialize from flyte-sdk's ``config.yaml``: ``path_or_config`` (a path, or the file's content as a dict),
    else the first of ``./config.yaml``, ``./.flyte/config.yaml``, ``<git root>/.flyte/config.yaml``, ``$UCTL_CONFIG``,
    ``$FLYTECTL_CONFIG``, ``~/.union/config.yaml``, ``~/.flyte/config.yaml``. No file found: local mode, silently.
    A path given that does not exist raises :class:`flyte.errors.InitializationError`. Arguments override the file's
    ``task`` section (org, project, domain)."""
    global _current
    source: str | None = None
    if isinstance(path_or_config, dict):
        settings = dict(path_or_config)
    elif path_or_config is not None:
        path = Path(path_or_config)
        if root_dir is not None and not path.is_absolute():
            path = Path(root_dir) / path
        if not path.is_file():
            raise InitializationError("ConfigFileNotFoundError", "user",
                                      f"flyte.init_from_config: no config file at {str(path)!r}")
        source, settings = str(path), _read_yaml(path)
    else:
        found = _discover()
        source, settings = (str(found), _read_yaml(found)) if found else (None, {})
    task_section = settings.get("task") or {}
    image_section = settings.get("image") or {}
    file_images = image_section.get("images") if isinstance(image_section, dict) else None
    _set_levels(log_level, user_log_level)
    _current = InitConfig(
        org=org or task_section.get("org"),
        project=project or task_section.get("project"),
        domain=domain or task_section.get("domain"),
        root_dir=Path(root_dir) if root_dir else None,
        endpoint=(settings.get("admin") or {}).get("endpoint"),
        storage=storage if storage is not None else settings.get("storage"),
        images={**_image_map(file_images), **_image_map(images)},
        image_builder=image_builder or image_section.get("builder") or "local",
        source=source,
        settings=settings,
        kubernetes=_kubernetes(settings.get("kubernetes"), f"{source or 'config'}: kubernetes"),
    )
    if source:
        system_logger.debug("flyte: configuration read from %s", source)


@sync_and_aio
def init_from_api_key(api_key: str | None = None, project: str | None = None, domain: str | None = None,
                      root_dir: str | Path | None = None, log_level: int | str | None = None,
                      log_format: str | None = None, storage: Any = None, batch_size: int = 1000,
                      image_builder: str = "local", images: Any = None, sync_local_sys_paths: bool = True,
                      insecure_skip_verify: bool = False, ca_cert_file_path: str | None = None) -> None:
    """flyte-sdk's API-key login: there is no Flyte backend to log in to here, so this records the project and
    domain like :func:`init`."""
    init(project=project, domain=domain, root_dir=root_dir, log_level=log_level, storage=storage,
         image_builder=image_builder, images=images)


@sync_and_aio
def init_in_cluster(org: str | None = None, project: str | None = None, domain: str | None = None,
                    api_key: str | None = None, endpoint: str | None = None, insecure: bool = False) -> dict[str, Any]:
    """Inside a Flyte backend's pod flyte-sdk connects to the backend; here it records the names (see :func:`init`)."""
    init(org=org, project=project, domain=domain, endpoint=endpoint)
    return {"org": org, "project": project, "domain": domain, "endpoint": endpoint}


@sync_and_aio
def init_passthrough(endpoint: str | None = None, org: str | None = None, project: str | None = None,
                     domain: str | None = None, insecure: bool = False) -> dict[str, Any]:
    """As :func:`init_in_cluster`."""
    return init_in_cluster(org=org, project=project, domain=domain, endpoint=endpoint)


def is_control_plane_available() -> bool:
    """Whether runs go to a Flyte backend's control plane: never here (runs are local or on Kubernetes)."""
    return False


def current_project() -> str:
    """The project given to ``flyte.init*``; raises :class:`flyte.errors.InitializationError` without one."""
    return _required("project")


def current_domain() -> str:
    """The domain given to ``flyte.init*``; raises :class:`flyte.errors.InitializationError` without one."""
    return _required("domain")


def _required(name: str) -> str:
    value = getattr(_current, name, None) if _current is not None else None
    if not value:
        raise InitializationError("NotInitializedError", "user",
                                  f"no {name}: call flyte.init({name}=...) or give task.{name} in the config file")
    return str(value)


def _discover() -> Path | None:
    candidates: list[Path] = [Path("config.yaml"), Path(".flyte") / "config.yaml"]
    git_root = _git_root(Path.cwd())
    if git_root is not None:
        candidates.append(git_root / ".flyte" / "config.yaml")
    candidates += [Path(os.environ[var]) for var in ("UCTL_CONFIG", "FLYTECTL_CONFIG") if os.environ.get(var)]
    home = Path.home()
    candidates += [home / ".union" / "config.yaml", home / ".flyte" / "config.yaml"]
    return next((path for path in candidates if path.is_file()), None)


def _git_root(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
    return None


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InitializationError("ConfigFileInvalidError", "user", f"{path}: not valid YAML: {exc}") from None
    if not isinstance(content, dict):
        raise InitializationError("ConfigFileInvalidError", "user", f"{path}: expected a mapping at the top level")
    return content


def _image_map(images: Any) -> dict[str, str]:
    """flyte-sdk's ``images``: ``"name=uri"`` or ``"uri"`` (the default image) strings, or a mapping."""
    if not images:
        return {}
    if isinstance(images, dict):
        return {str(k): str(v) for k, v in images.items()}
    out = {}
    for item in images:
        name, _, uri = str(item).rpartition("=")
        out[name or "default"] = uri
    return out


def _kubernetes(value: Any, where: str) -> Any:
    if value is None:
        return None
    from ._k8s.settings import parse

    try:
        return parse(value, where)
    except (TypeError, ValueError) as exc:
        raise InitializationError("InvalidKubernetesSettings", "user", str(exc)) from None


def _set_levels(log_level: int | str | None, user_log_level: int | str | None) -> None:
    if log_level is not None:
        system_logger.setLevel(log_level.upper() if isinstance(log_level, str) else log_level)
    if user_log_level is not None:
        logger.setLevel(user_log_level.upper() if isinstance(user_log_level, str) else user_log_level)

