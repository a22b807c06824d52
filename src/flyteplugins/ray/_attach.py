"""The attach tier: connect this process to an existing Ray cluster and ship the run's code to it.

The cluster belongs to someone else: stopping the engine only disconnects this driver (``ray.shutdown()`` on a
connected driver leaves the cluster's processes alone).

A cluster with Ray's token authentication (the default of `ray start` in recent Ray) accepts this driver only when
``RAY_AUTH_MODE=token`` is set before Ray is first imported and the token is available (``~/.ray/auth_token``,
``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH``): Ray never turns token mode on by itself for an explicit address.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import anyio

from . import _user_init
from ._embedded import RayHandle, silence_thread_warning

log = logging.getLogger("flyteplugins.ray")


@dataclass(frozen=True)
class AttachSpec:
    address: str
    runtime_env: str  # JSON, with the code bundle as working_dir


async def connect(spec: AttachSpec) -> RayHandle:
    import ray

    if ray.is_initialized():
        raise RuntimeError(
            "flyteplugins.ray: Ray is already initialized in this process by other code; call ray.shutdown() "
            f"before running Ray tasks against {spec.address!r}"
        )
    silence_thread_warning()
    kwargs: dict[str, Any] = {"address": spec.address, "log_to_driver": True}
    runtime_env = json.loads(spec.runtime_env)
    if runtime_env:
        kwargs["runtime_env"] = runtime_env
    # Connecting starts no local processes, so a pooled thread is fine here (unlike the embedded start).
    context = await anyio.to_thread.run_sync(lambda: ray.init(**kwargs))
    _user_init.adopt()
    dashboard = getattr(context, "dashboard_url", None)
    address = spec.address
    info = getattr(context, "address_info", None) or {}
    if isinstance(info, dict) and info.get("gcs_address"):
        address = info["gcs_address"]
    return RayHandle(tier="attach", address=address, dashboard_url=f"http://{dashboard}" if dashboard else None)


def disconnect(handle: RayHandle) -> None:
    """Disconnect the driver; the cluster keeps running."""
    import ray

    try:
        _user_init.release()
        ray.shutdown()
    except Exception:
        log.exception("disconnecting from the Ray cluster at %s failed", handle.address)
