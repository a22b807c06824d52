"""Ray tasks: ``TaskEnvironment(plugin_config=RayJobConfig(...))`` runs each task with a Ray cluster at hand.

```python
import flyte
import ray
from flyteplugins.ray.task import HeadNodeConfig, RayJobConfig, WorkerNodeConfig

env = flyte.TaskEnvironment(name="ray_env", plugin_config=RayJobConfig(
    worker_node_config=[WorkerNodeConfig(group_name="workers", replicas=2)]))

@env.task
async def squares(n: int = 3) -> list[int]:
    @ray.remote
    def square(x):
        return x * x
    return ray.get([square.remote(i) for i in range(n)])
```

Without ``address`` a local Ray instance is started in ``pre`` (sized from the config, capped at this machine),
reused by compatible calls of the run and stopped when the run ends. With ``address`` the task connects to that
cluster and ships the run's code bundle as the job's ``working_dir``. Importing this module does not import Ray.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from flyte.extend import AsyncFunctionTaskTemplate, TaskPluginRegistry, acquire_engine, code_bundle, report_link

from ._config import AutoscalerOptionsConfig, HeadNodeConfig, RayJobConfig, WorkerNodeConfig

__all__ = ["AutoscalerOptionsConfig", "HeadNodeConfig", "RayFunctionTask", "RayJobConfig", "WorkerNodeConfig"]

ENGINE_KIND = "ray"  # Ray is one connection per process, whichever tier


class RayFunctionTask(AsyncFunctionTaskTemplate):
    """Runs a function with Ray initialized in this process: a local instance, or a connection to ``address``.

    ``flyte.ctx().data`` gets ``ray_tier`` ("embedded" or "attach"), ``ray_address``, ``ray_temp_dir`` (the local
    instance's session files, removed when it stops) and, when the dashboard is on, ``ray_dashboard_url`` (also
    shown as a link in the run's progress).
    """

    task_type: ClassVar[str] = "ray"
    supports_reuse: ClassVar[bool] = True
    blocking_body: ClassVar[bool] = True

    async def pre(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        from ._embedded import RayHandle

        config: RayJobConfig = self.plugin_config
        bundle = code_bundle()
        handle: RayHandle
        address = config.address or _operator_cluster()
        if address:
            from ._attach import AttachSpec, connect, disconnect
            from ._runtime_env import job_runtime_env

            if config.address:
                runtime_env, _ = job_runtime_env(config.runtime_env, bundle, local=False)
            else:
                # A RayJob's driver: the job's runtime env (the user's, with the bundle as working_dir, from the
                # RayJob's runtimeEnvYAML) applies already, and Ray refuses a driver's that repeats its fields.
                runtime_env = "null"
            attach = AttachSpec(address, runtime_env)
            handle = await acquire_engine(ENGINE_KIND, attach, lambda: connect(attach), disconnect, alive=_connected)
        else:
            from ._embedded import LocalSpec, start_local, stop_local
            from ._runtime_env import job_runtime_env
            from ._sizing import local_size

            runtime_env, code_paths = job_runtime_env(config.runtime_env, bundle, local=True)
            spec = LocalSpec(size=local_size(config), runtime_env=runtime_env, code_paths=code_paths)
            handle = await acquire_engine(ENGINE_KIND, spec, lambda: start_local(spec), stop_local, alive=_connected)
        data: dict[str, Any] = {"ray_tier": handle.tier, "ray_address": handle.address}
        if handle.temp_dir:
            data["ray_temp_dir"] = handle.temp_dir
        if handle.dashboard_url:
            report_link("Ray dashboard", handle.dashboard_url)
            data["ray_dashboard_url"] = handle.dashboard_url
        return data

    def interrupt(self, data: dict[str, Any]) -> None:
        """Cancel the driver's running Ray tasks, so a body blocked in ``ray.get`` raises at once."""
        from ._embedded import cancel_driver_tasks

        cancel_driver_tasks()

    def custom_config(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The job as a KubeRay RayJob would describe it (for remote backends)."""
        config: RayJobConfig = self.plugin_config
        head = config.head_node_config or HeadNodeConfig()
        job: dict[str, Any] = {
            "rayCluster": {
                "headGroupSpec": {"rayStartParams": dict(head.ray_start_params or {})},
                "workerGroupSpec": [
                    {
                        "groupName": group.group_name,
                        "replicas": group.replicas,
                        "minReplicas": group.min_replicas if group.min_replicas is not None else group.replicas,
                        "maxReplicas": group.max_replicas if group.max_replicas is not None else group.replicas,
                        "rayStartParams": dict(group.ray_start_params or {}),
                    }
                    for group in config.worker_node_config
                ],
                "enableAutoscaling": config.enable_autoscaling,
            },
            "shutdownAfterJobFinishes": config.shutdown_after_job_finishes,
        }
        if config.runtime_env:
            job["runtimeEnv"] = msgspec.json.encode(config.runtime_env).decode()
        if config.ttl_seconds_after_finished is not None:
            job["ttlSecondsAfterFinished"] = config.ttl_seconds_after_finished
        if config.address:
            job["address"] = config.address
        return job


def _connected(handle: Any) -> bool:
    """False once user code called ``ray.shutdown()``: the pool then starts (or connects) afresh."""
    import ray

    return bool(ray.is_initialized())


TaskPluginRegistry.register(RayJobConfig, RayFunctionTask)


def _operator_cluster() -> str | None:
    """In a RayJob's driver (a remote run on Kubernetes), the job's own cluster: ``RAY_ADDRESS``, which the job
    submission sets."""
    import os

    from flyte.extend import in_remote_pod

    if in_remote_pod() and os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    return None
