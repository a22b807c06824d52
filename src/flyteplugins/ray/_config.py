"""The Ray plugin's public configuration: a head node, worker groups and the job's runtime environment.

Importing this module never imports Ray. Every struct checks its values when it is built, so a bad value fails where
it is written; messages name the field (``WorkerNodeConfig.replicas``) and say what is allowed.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from flyte import PodTemplate, Resources
from flyte.extend import ConfigMeta

ResourcesLike = Resources | dict[str, Any]

_ADDRESS = re.compile(r"^(ray://)?[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$|^ray://[A-Za-z0-9_.\-\[\]]+$")
_RESOURCE_KEYS = {"cpu", "memory", "gpu", "disk", "shm"}


def _check_start_params(owner: str, params: Any) -> None:
    if params is None:
        return
    if not isinstance(params, dict):
        raise TypeError(f"{owner}.ray_start_params: expected a dict of `ray start` flags to strings, "
                        f"got {type(params).__name__}")
    for key, value in params.items():
        if not isinstance(key, str) or not key or key.startswith("-"):
            raise ValueError(f"{owner}.ray_start_params: keys are `ray start` flag names without dashes "
                             f"(e.g. 'num-cpus'), got {key!r}")
        if not isinstance(value, str):
            raise TypeError(f"{owner}.ray_start_params[{key!r}]: values must be strings (as in `ray start "
                            f"--{key}=...`), got {type(value).__name__} {value!r}; write {str(value)!r}")


def _normalize_resources(owner: str, field: str, value: Any) -> Resources | None:
    """``requests``/``limits`` as given (``flyte.Resources`` or ``{"cpu": "2", "memory": "4Gi"}``) -> Resources."""
    if value is None or isinstance(value, Resources):
        return value
    if not isinstance(value, dict):
        raise TypeError(f"{owner}.{field}: expected flyte.Resources or a dict like {{'cpu': '2', 'memory': '4Gi'}}, "
                        f"got {type(value).__name__}")
    unknown = set(value) - _RESOURCE_KEYS
    if unknown:
        raise ValueError(f"{owner}.{field}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_RESOURCE_KEYS)}")
    try:
        return Resources(**value)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{owner}.{field}: {exc}") from None


def _check_pod_template(owner: str, value: Any) -> None:
    if value is not None and not isinstance(value, (PodTemplate, str)):
        raise TypeError(f"{owner}.pod_template: expected flyte.PodTemplate, a template name or None, "
                        f"got {type(value).__name__}")


def _check_count(field: str, value: Any, *, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{field}: expected an integer >= 0, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{field}: must be >= 0, got {value}")


class HeadNodeConfig(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """The Ray head node.

    ``ray_start_params`` are `ray start` flags without dashes, all values strings (``{"num-cpus": "2"}``);
    ``requests``/``limits`` are ``flyte.Resources`` or a dict of cpu/memory/gpu. On this machine the head's CPUs
    count toward the local instance's size (default: none when worker groups exist, so work goes to the workers).
    """

    __positional__ = ("ray_start_params", "pod_template", "requests", "limits")

    ray_start_params: dict[str, str] | None = None
    pod_template: PodTemplate | str | None = None
    requests: ResourcesLike | None = None
    limits: ResourcesLike | None = None

    def __post_init__(self) -> None:
        _check_start_params("HeadNodeConfig", self.ray_start_params)
        _check_pod_template("HeadNodeConfig", self.pod_template)
        for field in ("requests", "limits"):
            msgspec.structs.force_setattr(self, field, _normalize_resources("HeadNodeConfig", field,
                                                                            getattr(self, field)))


class WorkerNodeConfig(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """A group of identical Ray worker nodes: ``replicas`` of them, between ``min_replicas`` and ``max_replicas``
    when autoscaling. Resource fields as in :class:`HeadNodeConfig`."""

    __positional__ = ("group_name", "replicas", "min_replicas", "max_replicas", "ray_start_params", "pod_template", "requests", "limits")

    group_name: str
    replicas: int = 1
    min_replicas: int | None = None
    max_replicas: int | None = None
    ray_start_params: dict[str, str] | None = None
    pod_template: PodTemplate | str | None = None
    requests: ResourcesLike | None = None
    limits: ResourcesLike | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.group_name, str) or not self.group_name or re.search(r"\s", self.group_name):
            raise ValueError(f"WorkerNodeConfig.group_name: expected a non-empty name without spaces, "
                             f"got {self.group_name!r}")
        owner = f"WorkerNodeConfig({self.group_name!r})"
        _check_count(f"{owner}.replicas", self.replicas, optional=False)
        _check_count(f"{owner}.min_replicas", self.min_replicas, optional=True)
        _check_count(f"{owner}.max_replicas", self.max_replicas, optional=True)
        if self.min_replicas is not None and self.max_replicas is not None and self.min_replicas > self.max_replicas:
            raise ValueError(f"{owner}.min_replicas: {self.min_replicas} exceeds max_replicas {self.max_replicas}; "
                             "min_replicas must be <= max_replicas")
        if self.min_replicas is not None and self.replicas < self.min_replicas:
            raise ValueError(f"{owner}.replicas: {self.replicas} is below min_replicas {self.min_replicas}")
        if self.max_replicas is not None and self.replicas > self.max_replicas:
            raise ValueError(f"{owner}.replicas: {self.replicas} exceeds max_replicas {self.max_replicas}")
        _check_start_params(owner, self.ray_start_params)
        _check_pod_template(owner, self.pod_template)
        for field in ("requests", "limits"):
            msgspec.structs.force_setattr(self, field, _normalize_resources(owner, field, getattr(self, field)))


class AutoscalerOptionsConfig(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """KubeRay's autoscaler settings (``enable_autoscaling=True`` on Kubernetes): ``upscaling_mode`` (one of
    ``UpscalingMode``'s values), ``idle_timeout_seconds``, and the autoscaler container's ``image``, ``env`` and
    ``resources``. A local Ray instance does not autoscale; these apply to the Kubernetes tier."""

    __positional__ = ("upscaling_mode", "idle_timeout_seconds", "image", "env", "resources")

    class UpscalingMode:
        UNSPECIFIED = "Unspecified"
        DEFAULT = "Default"
        AGGRESSIVE = "Aggressive"
        CONSERVATIVE = "Conservative"

    upscaling_mode: str | None = None
    idle_timeout_seconds: int | None = None
    image: str | None = None
    env: dict[str, str] | None = None
    resources: Resources | None = None

    def __post_init__(self) -> None:
        modes = ("Unspecified", "Default", "Aggressive", "Conservative")
        if self.upscaling_mode is not None and self.upscaling_mode not in modes:
            raise ValueError(f"AutoscalerOptionsConfig.upscaling_mode: {self.upscaling_mode!r}; allowed: "
                             f"{', '.join(modes)} (AutoscalerOptionsConfig.UpscalingMode)")
        if self.idle_timeout_seconds is not None and (isinstance(self.idle_timeout_seconds, bool)
                                                      or not isinstance(self.idle_timeout_seconds, int)
                                                      or self.idle_timeout_seconds < 0):
            raise ValueError("AutoscalerOptionsConfig.idle_timeout_seconds: expected an int >= 0, got "
                             f"{self.idle_timeout_seconds!r}")


class RayJobConfig(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """A Ray job: the cluster it runs on and its runtime environment.

    - No ``address`` (default): a local Ray instance is started for the run, sized from the head and worker groups'
      requests (capped at this machine), and stopped when the run ends.
    - ``address="host:port"``, ``"ray://host:10001"`` or ``"auto"``: connect to an existing cluster, ship the code
      bundle as the ``working_dir``; the cluster is never shut down.

    ``runtime_env`` is Ray's runtime environment (``env_vars``, ``pip``, ``conda``, ``working_dir``...); the run's
    code bundle becomes its ``working_dir`` unless one is given. ``shutdown_after_job_finishes`` and
    ``ttl_seconds_after_finished`` govern a cluster created for the job on Kubernetes.
    """

    __positional__ = ("worker_node_config", "head_node_config", "enable_autoscaling", "autoscaler_options", "runtime_env", "address", "shutdown_after_job_finishes", "ttl_seconds_after_finished")

    worker_node_config: list[WorkerNodeConfig] = msgspec.field(default_factory=list)
    head_node_config: HeadNodeConfig | None = None
    enable_autoscaling: bool = False
    autoscaler_options: AutoscalerOptionsConfig | None = None
    runtime_env: dict[str, Any] | None = None
    address: str | None = None
    shutdown_after_job_finishes: bool = False
    ttl_seconds_after_finished: int | None = None

    def __post_init__(self) -> None:
        groups = self.worker_node_config
        if isinstance(groups, WorkerNodeConfig):
            groups = [groups]
        if not isinstance(groups, (list, tuple)) or not all(isinstance(g, WorkerNodeConfig) for g in groups):
            raise TypeError("RayJobConfig.worker_node_config: expected a list of WorkerNodeConfig, "
                            f"got {groups!r}")
        names = [g.group_name for g in groups]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"RayJobConfig.worker_node_config: group names must be unique, repeated: {duplicates}")
        msgspec.structs.force_setattr(self, "worker_node_config", list(groups))
        if self.head_node_config is not None and not isinstance(self.head_node_config, HeadNodeConfig):
            raise TypeError("RayJobConfig.head_node_config: expected HeadNodeConfig or None, "
                            f"got {type(self.head_node_config).__name__}")
        for field in ("enable_autoscaling", "shutdown_after_job_finishes"):
            if not isinstance(getattr(self, field), bool):
                raise TypeError(f"RayJobConfig.{field}: expected True or False, got {getattr(self, field)!r}")
        _check_runtime_env(self.runtime_env)
        if self.address is not None:
            if not isinstance(self.address, str) or not (self.address == "auto" or _ADDRESS.match(self.address)):
                raise ValueError(f"RayJobConfig.address: {self.address!r} is not a Ray address; allowed: "
                                 "'host:port' (GCS), 'ray://host:port' (Ray Client) or 'auto'")
        if self.ttl_seconds_after_finished is not None:
            _check_count("RayJobConfig.ttl_seconds_after_finished", self.ttl_seconds_after_finished, optional=False)
            if not self.shutdown_after_job_finishes:
                raise ValueError("RayJobConfig.ttl_seconds_after_finished: only applies when the cluster is shut "
                                 "down after the job; set shutdown_after_job_finishes=True or drop the TTL")


def _check_runtime_env(env: Any) -> None:
    if env is None:
        return
    if not isinstance(env, dict) or not all(isinstance(k, str) for k in env):
        raise TypeError(f"RayJobConfig.runtime_env: expected a dict with string keys, got {env!r}")
    env_vars = env.get("env_vars")
    if env_vars is not None:
        if not isinstance(env_vars, dict):
            raise TypeError(f"RayJobConfig.runtime_env['env_vars']: expected a dict of strings, got {env_vars!r}")
        for key, value in env_vars.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(f"RayJobConfig.runtime_env['env_vars'][{key!r}]: names and values must be strings, "
                                f"got {type(value).__name__} {value!r}")
    working_dir = env.get("working_dir")
    if working_dir is not None and not isinstance(working_dir, str):
        raise TypeError(f"RayJobConfig.runtime_env['working_dir']: expected a path or URI string, got {working_dir!r}")
    try:
        msgspec.json.encode(env)
    except (TypeError, msgspec.EncodeError) as exc:
        raise TypeError(f"RayJobConfig.runtime_env: must be JSON-serializable: {exc}") from None
