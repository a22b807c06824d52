"""Dask tasks: ``flyte.TaskEnvironment(plugin_config=Dask(...))``.

```python
from distributed import Client
from flyteplugins.dask.task import Dask, Scheduler, WorkerGroup

env = flyte.TaskEnvironment(name="dask_env", plugin_config=Dask(
    scheduler=Scheduler(resources=flyte.Resources(cpu="1", memory="2Gi")),
    workers=WorkerGroup(number_of_workers=2, resources=flyte.Resources(cpu="1", memory="2Gi")),
))

@env.task
async def total(n: int) -> int:
    client = Client()  # the task's cluster
    return client.submit(sum, range(n)).result()
```

Inside the task, ``distributed.Client()`` (no arguments), ``distributed.get_client()`` and ``dask.compute`` use the
task's cluster, and ``flyte.ctx().data`` holds ``"dask_client"`` (a client of it), ``"dask_scheduler_address"`` and,
embedded, ``"dask_cluster"`` (the ``LocalCluster``). The run's code is installed on every node by code-bundle
plugins, so workers import the user's modules even when they are not installed there.

Importing this module does not import dask or distributed.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import anyio

import flyte
from flyte.extend import AsyncFunctionTaskTemplate, TaskPluginRegistry, acquire_engine, code_bundle, report_link

from ._config import Dask, EmbeddedSpec, Scheduler, WorkerGroup, kubernetes_config
from ._engine import DaskEngine

__all__ = ["Dask", "DaskTask", "EmbeddedSpec", "Scheduler", "WorkerGroup"]

EMBEDDED_ENGINE = "dask"
ATTACHED_ENGINE = "dask-attached"


class DaskTask(AsyncFunctionTaskTemplate):
    """Runs a function with a Dask cluster: an embedded ``LocalCluster`` sized by the config, or, with
    ``Dask(scheduler_address=...)``, an existing scheduler. See the module docstring."""

    task_type: ClassVar[str] = "dask"
    supports_reuse: ClassVar[bool] = False
    blocking_body: ClassVar[bool] = True

    async def pre(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        from ._attach import start_attached, stop_attached
        from ._embedded import resizable, resize_embedded, start_embedded, stop_embedded

        config: Dask = self.plugin_config
        bundle_box: dict[str, Any] = {}

        async def build_bundle() -> None:
            try:
                bundle_box["bundle"] = await anyio.to_thread.run_sync(code_bundle)
            except Exception as exc:  # raised below as itself, not wrapped in an exception group
                bundle_box["error"] = exc

        # The bundle is packed while the cluster starts: a cold call then costs no more than the cluster.
        failure: Exception | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(build_bundle)
            try:
                address = config.scheduler_address or _operator_scheduler()
                if address is not None:
                    engine = await acquire_engine(ATTACHED_ENGINE, address, functools.partial(start_attached, address),
                                                  stop_attached, alive=DaskEngine.is_alive)
                else:
                    spec = config.embedded_spec()
                    engine = await acquire_engine(EMBEDDED_ENGINE, spec, functools.partial(start_embedded, spec),
                                                  stop_embedded, alive=DaskEngine.is_alive, resizable=resizable,
                                                  resize=resize_embedded)
            except Exception as exc:
                failure = exc
                group.cancel_scope.cancel()
        if failure is not None:
            raise failure
        if "error" in bundle_box:
            raise bundle_box["error"]
        bundle = bundle_box["bundle"]
        if bundle and engine.bundle_digest != bundle.digest:
            await anyio.to_thread.run_sync(engine.ship_bundle, bundle.digest, str(bundle.archive))
        if engine.dashboard_link:
            report_link("Dask dashboard", engine.dashboard_link)
        return {
            "dask_engine": engine,
            "dask_client": engine.client,
            "dask_cluster": engine.cluster,
            "dask_scheduler_address": engine.scheduler_address,
        }

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        from ._scope import cluster_scope

        engine = flyte.ctx().data["dask_engine"]  # type: ignore[union-attr]
        with cluster_scope(engine):
            return await super().execute(*args, **kwargs)

    def interrupt(self, data: dict[str, Any]) -> None:
        """Cancel the futures on this call's scheduler, so a body blocked in ``gather``/``result()``/``compute``
        raises at once."""
        engine = data.get("dask_engine")
        if engine is not None:
            engine.cancel_futures()

    def custom_config(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return kubernetes_config(self.plugin_config)


def _operator_scheduler() -> str | None:
    """In the runner pod of a DaskJob (a remote run on Kubernetes), the job's own scheduler, which the operator
    names in ``DASK_SCHEDULER_ADDRESS``."""
    import os

    from flyte.extend import in_remote_pod

    if in_remote_pod() and os.environ.get("DASK_SCHEDULER_ADDRESS"):
        return os.environ["DASK_SCHEDULER_ADDRESS"]
    return None


TaskPluginRegistry.register(Dask, DaskTask)
