"""From a config and the environment to what the launcher runs and the environment it runs with."""

from __future__ import annotations

import os
import socket
import sys
import uuid
from collections.abc import Mapping
from typing import Any

from ._config import Elastic
from ._job import LaunchPlan
from ._nccl import nccl_environment

# Per-process variables a launcher must not inherit from a task process that is itself a torch worker.
_WORKER_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE",
                     "ROLE_RANK", "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT",
                     "TORCHELASTIC_MAX_RESTARTS", "TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_ERROR_FILE",
                     "TORCH_NCCL_ASYNC_ERROR_HANDLING_SET_BY_FLYTE")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rendezvous_endpoint(config: Elastic, max_nodes: int, environ: Mapping[str, str]) -> str:
    """``rdzv_endpoint``, else the Kubeflow operator's ``PET_RDZV_ENDPOINT`` / ``PET_MASTER_ADDR:PORT``; a single
    node needs none (c10d picks a free local port, as ``torchrun --standalone`` does)."""
    if config.rdzv_endpoint:
        return config.rdzv_endpoint
    if environ.get("PET_RDZV_ENDPOINT"):
        return environ["PET_RDZV_ENDPOINT"]
    if environ.get("PET_MASTER_ADDR") and environ.get("PET_MASTER_PORT"):
        return f"{environ['PET_MASTER_ADDR']}:{environ['PET_MASTER_PORT']}"
    if max_nodes > 1:
        raise ValueError(
            f"Elastic.rdzv_endpoint: nnodes={config.nnodes!r} needs a rendezvous endpoint 'host:port' shared by all "
            "nodes; set rdzv_endpoint or PET_RDZV_ENDPOINT"
        )
    if config.rdzv_backend == "c10d":
        return "localhost:0"
    if config.rdzv_backend == "static":
        return f"127.0.0.1:{_free_port()}"
    raise ValueError(f"Elastic.rdzv_endpoint: the {config.rdzv_backend!r} backend needs an endpoint")


def launch_plan(config: Elastic, task_name: str, environ: Mapping[str, str]) -> LaunchPlan:
    min_nodes, max_nodes = config.node_range
    endpoint = rendezvous_endpoint(config, max_nodes, environ)
    if max_nodes > 1:
        # Every node's agent must name the same rendezvous; the operator sets PET_RDZV_ID, else the task decides.
        run_id = environ.get("PET_RDZV_ID") or f"flyte-{task_name}"
    else:
        run_id = f"flyte-{uuid.uuid4().hex[:12]}"
    configs: dict[str, Any] = dict(config.rdzv_configs)
    if config.rdzv_backend == "static":
        configs.setdefault("rank", int(environ.get("PET_NODE_RANK", environ.get("NODE_RANK", "0"))))
    return LaunchPlan(
        min_nodes=min_nodes,
        max_nodes=max_nodes,
        nproc_per_node=config.nproc_per_node,
        rdzv_backend=config.rdzv_backend,
        rdzv_endpoint=endpoint,
        rdzv_configs=configs,
        run_id=run_id,
        start_method=config.start_method,
        monitor_interval=float(config.monitor_interval),
        max_restarts=config.max_restarts,
    )


def launcher_environment(config: Elastic, job_dir: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The launcher's (and so every worker's) environment: the caller's, plus NCCL settings, unbuffered output, one
    OpenMP thread per worker when several share the machine (as torchrun does) unless the user chose, and the
    caller's ``sys.path`` so that whatever the caller can import, the workers can too."""
    env = {k: v for k, v in environ.items() if k not in _WORKER_VARIABLES}
    env.update(nccl_environment(config))
    env["PYTHONUNBUFFERED"] = "1"
    if config.nproc_per_node > 1 and "OMP_NUM_THREADS" not in environ:
        env["OMP_NUM_THREADS"] = "1"
    paths = [p or os.getcwd() for p in sys.path]
    if environ.get("PYTHONPATH"):
        paths.append(environ["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    from ._supervisor import JOB_ENV

    env[JOB_ENV] = job_dir
    return env
