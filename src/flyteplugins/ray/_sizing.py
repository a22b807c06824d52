"""How big the local Ray instance is: the head and worker groups' requests added up, capped at this machine.

A KubeRay cluster gives each node the CPUs and memory its pod requests (or its ``num-cpus``/``memory`` start
params). The local instance stands in for the whole cluster in one raylet, so it gets the sum over nodes. The head
counts no CPUs unless it asks for some when worker groups exist (work lands on the workers, as in the common KubeRay
set-up); with autoscaling, a group counts at ``max_replicas``, the most the cluster could grow to.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from typing import Any

from flyte import Resources
from flyte.extend import quantity_to_float

from ._config import HeadNodeConfig, RayJobConfig, WorkerNodeConfig

log = logging.getLogger("flyteplugins.ray")

# `ray start` flags that only change how the CLI prints; they have no meaning for an in-process start.
_COSMETIC_PARAMS = {"log-color", "log-style", "block", "verbose", "disable-usage-stats", "temp-dir"}
_SIZING_PARAMS = {"num-cpus", "num-gpus", "memory", "resources"}
_HEAD_PARAMS = {"object-store-memory", "include-dashboard", "dashboard-host", "dashboard-port"}


@dataclass(frozen=True)
class LocalSize:
    """What ``ray.init`` is asked for. Hashable: part of the engine spec, so a resize restarts the instance."""

    num_cpus: int
    num_gpus: int
    memory: int | None
    object_store_memory: int | None
    resources: str  # JSON of custom resources, sorted, "{}" when none
    include_dashboard: bool
    dashboard_host: str
    dashboard_port: int | None


def local_size(config: RayJobConfig) -> LocalSize:
    head = config.head_node_config or HeadNodeConfig()
    groups = config.worker_node_config
    cpus = _node_cpus(head, default=0.0 if groups else 1.0)
    gpus = _node_number(head, "num-gpus", _gpu_request(head.requests))
    memory = _node_memory(head)
    resources = _node_resources(head)
    for group in groups:
        count = group.replicas
        if config.enable_autoscaling and group.max_replicas is not None:
            count = group.max_replicas
        cpus += count * _node_cpus(group, default=1.0)
        gpus += count * _node_number(group, "num-gpus", _gpu_request(group.requests))
        group_memory = _node_memory(group)
        if group_memory is not None:
            memory = (memory or 0) + count * group_memory
        for name, amount in _node_resources(group).items():
            resources[name] = resources.get(name, 0.0) + count * amount
    _warn_ignored(head, "HeadNodeConfig", _SIZING_PARAMS | _HEAD_PARAMS)
    for group in groups:
        _warn_ignored(group, f"WorkerNodeConfig({group.group_name!r})", _SIZING_PARAMS)

    params = head.ray_start_params or {}
    machine_cpus = os.cpu_count() or 1
    num_cpus = max(1, min(math.ceil(cpus - 1e-9), machine_cpus))
    if memory is not None:
        memory = min(memory, _machine_memory())
    object_store = params.get("object-store-memory")
    dashboard_port = params.get("dashboard-port")
    return LocalSize(
        num_cpus=num_cpus,
        num_gpus=math.ceil(gpus - 1e-9),
        memory=memory,
        object_store_memory=int(_number("HeadNodeConfig", "object-store-memory", object_store)) if object_store else None,
        resources=json.dumps(resources, sort_keys=True),
        include_dashboard=params.get("include-dashboard", "false").strip().lower() in ("true", "1", "yes"),
        dashboard_host=params.get("dashboard-host", "127.0.0.1"),
        dashboard_port=int(_number("HeadNodeConfig", "dashboard-port", dashboard_port)) if dashboard_port else None,
    )


def _node_cpus(node: HeadNodeConfig | WorkerNodeConfig, default: float) -> float:
    requested = node.requests.cpu_request() if isinstance(node.requests, Resources) else None
    return _node_number(node, "num-cpus", requested if requested is not None else default)


def _node_memory(node: HeadNodeConfig | WorkerNodeConfig) -> int | None:
    params = node.ray_start_params or {}
    if "memory" in params:
        return int(_number(_owner(node), "memory", params["memory"]))
    if isinstance(node.requests, Resources) and node.requests.memory is not None:
        memory = node.requests.memory
        return int(quantity_to_float(memory[0] if isinstance(memory, tuple) else memory))
    return None


def _node_resources(node: HeadNodeConfig | WorkerNodeConfig) -> dict[str, float]:
    raw = (node.ray_start_params or {}).get("resources")
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or not all(isinstance(v, (int, float)) for v in parsed.values()):
        raise ValueError(f"{_owner(node)}.ray_start_params['resources']: expected a JSON object of numbers such as "
                         f"'{{\"accelerator\": 1}}', got {raw!r}")
    return {str(k): float(v) for k, v in parsed.items()}


def _gpu_request(requests: Resources | dict[str, Any] | None) -> float:
    """GPUs asked for, from flyte.Resources or a v1 requests map ({"gpu": 1} / {"nvidia.com/gpu": "1"})."""
    if isinstance(requests, dict):
        gpu = requests.get("gpu", requests.get("nvidia.com/gpu"))
    else:
        gpu = requests.gpu if isinstance(requests, Resources) else None
    return 0.0 if gpu is None else float(str(gpu).split(":")[-1])


def _node_number(node: HeadNodeConfig | WorkerNodeConfig, param: str, default: float) -> float:
    value = (node.ray_start_params or {}).get(param)
    return default if value is None else _number(_owner(node), param, value)


def _number(owner: str, param: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{owner}.ray_start_params[{param!r}]: expected a number, got {value!r}") from None
    if number < 0:
        raise ValueError(f"{owner}.ray_start_params[{param!r}]: must be >= 0, got {value!r}")
    return number


def _owner(node: HeadNodeConfig | WorkerNodeConfig) -> str:
    return f"WorkerNodeConfig({node.group_name!r})" if isinstance(node, WorkerNodeConfig) else "HeadNodeConfig"


def _warn_ignored(node: HeadNodeConfig | WorkerNodeConfig, owner: str, used: set[str]) -> None:
    ignored = sorted(set(node.ray_start_params or {}) - used - _COSMETIC_PARAMS)
    if ignored:
        log.info("%s.ray_start_params %s have no effect on the local Ray instance (they apply on Kubernetes)",
                 owner, ignored)


def _machine_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**62
