"""The user-facing Dask config: ``Dask(scheduler=Scheduler(...), workers=WorkerGroup(...))``.

Resources are given as a :class:`flyte.Resources` (``resources=``) or, as in flytekit v1, as Kubernetes maps
(``requests={"cpu": "1", "memory": "2Gi"}``, ``limits=...``); both spellings end up as one ``flyte.Resources``.

Importing this module never imports dask or distributed.
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

import msgspec

from flyte import Resources
from flyte.extend import ConfigMeta, quantity_to_float, resources_from_v1

_ADDRESS = re.compile(r"^(tcp|tls|ucx|ws|wss)://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.\-]+):(\d{1,5})$")


class Scheduler(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """The Dask scheduler. ``image`` and the resources size its pod on Kubernetes; the embedded scheduler runs
    inside this process and ignores them.

    ``resources`` is a :class:`flyte.Resources`; ``requests``/``limits`` are the flytekit v1 spelling
    (``{"cpu": "1", "memory": "2Gi"}``). Give one or the other.
    """

    __positional__ = ("image", "resources")

    image: str | None = None
    resources: Resources | None = None
    requests: dict[str, str | int | float] | None = None
    limits: dict[str, str | int | float] | None = None

    def __post_init__(self) -> None:
        _check_image("Scheduler", self.image)
        resources_from_v1("Scheduler", self.resources, self.requests, self.limits)

    def effective_resources(self) -> Resources | None:
        """The resources from whichever spelling was used."""
        return resources_from_v1("Scheduler", self.resources, self.requests, self.limits)


class WorkerGroup(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """The Dask workers: ``number_of_workers`` processes, each with ``resources``.

    Embedded, each worker process gets ``ceil(cpu)`` threads (the limit when a (request, limit) pair is given; 1 when
    no cpu is set) and the memory limit as Dask's ``memory_limit`` (Dask's ``"auto"`` share of this machine when no
    memory is set). ``image`` is for Kubernetes only.
    """

    __positional__ = ("number_of_workers", "image", "resources")

    number_of_workers: int = 1
    image: str | None = None
    resources: Resources | None = None
    requests: dict[str, str | int | float] | None = None
    limits: dict[str, str | int | float] | None = None

    def __post_init__(self) -> None:
        count = self.number_of_workers
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"WorkerGroup.number_of_workers: expected an int >= 1, got {count!r}")
        _check_image("WorkerGroup", self.image)
        resources_from_v1("WorkerGroup", self.resources, self.requests, self.limits)

    def effective_resources(self) -> Resources | None:
        """The resources from whichever spelling was used."""
        return resources_from_v1("WorkerGroup", self.resources, self.requests, self.limits)


class Dask(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """Run the task with a Dask cluster.

    - Embedded (default): a ``distributed.LocalCluster`` on this machine sized by ``workers``, reused by later
      compatible calls of the run and closed when the run ends.
    - Attach: ``scheduler_address="tcp://host:8786"`` connects to a running scheduler instead; the run's code is
      shipped to its workers, and the cluster is left running (only this SDK's plugins are removed at the end).
      ``scheduler`` and ``workers`` are then not used.

    ``dashboard=False`` starts the embedded cluster without its dashboard HTTP server.
    """

    __positional__ = ("scheduler", "workers")

    scheduler: Scheduler = msgspec.field(default_factory=Scheduler)
    workers: WorkerGroup = msgspec.field(default_factory=WorkerGroup)
    scheduler_address: str | None = None
    dashboard: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.scheduler, Scheduler):
            raise TypeError(f"Dask.scheduler: expected a Scheduler(...), got {type(self.scheduler).__name__}")
        if not isinstance(self.workers, WorkerGroup):
            raise TypeError(f"Dask.workers: expected a WorkerGroup(...), got {type(self.workers).__name__}")
        if self.scheduler_address is not None:
            if not isinstance(self.scheduler_address, str) or not _ADDRESS.match(self.scheduler_address):
                raise ValueError(
                    f"Dask.scheduler_address: {self.scheduler_address!r} is not a scheduler address; "
                    "expected '<protocol>://<host>:<port>' with protocol tcp, tls, ucx, ws or wss, "
                    "e.g. 'tcp://10.0.0.5:8786'"
                )
            port = int(_ADDRESS.match(self.scheduler_address).group(3))  # type: ignore[union-attr]
            if not 0 < port < 65536:
                raise ValueError(f"Dask.scheduler_address: port {port} is out of range 1-65535")
        if not isinstance(self.dashboard, bool):
            raise TypeError(f"Dask.dashboard: expected True or False, got {self.dashboard!r}")

    def embedded_spec(self) -> EmbeddedSpec:
        """What the embedded cluster must look like for this config (equal specs share a running cluster)."""
        resources = self.workers.effective_resources()
        threads = 1
        memory_limit: int | str = "auto"  # Dask's "auto": an equal share of this machine's memory per worker
        if resources is not None:
            if resources.cpu is not None:
                cpu = resources.cpu[1] if isinstance(resources.cpu, tuple) else resources.cpu
                threads = max(1, math.ceil(quantity_to_float(cpu)))
            limit = resources.memory_limit_bytes()
            if limit:
                memory_limit = limit
        return EmbeddedSpec(self.workers.number_of_workers, threads, memory_limit, self.dashboard)


class EmbeddedSpec(NamedTuple):
    """The shape of an embedded cluster; the engine pool restarts the cluster when it changes."""

    workers: int
    threads_per_worker: int
    memory_limit: int | str
    dashboard: bool


def _check_image(owner: str, image: Any) -> None:
    if image is not None and (not isinstance(image, str) or not image):
        raise ValueError(f"{owner}.image: expected an image name such as 'ghcr.io/org/dask:1.0', got {image!r}")


def kubernetes_config(config: Dask) -> dict[str, Any]:
    """The config in the DaskJob shape a Kubernetes backend expects (``custom_config``)."""

    def side(resources: Resources | None) -> dict[str, Any]:
        if resources is None:
            return {}
        return {"requests": resources.requests(), "limits": resources.limits()}

    out: dict[str, Any] = {
        "scheduler": {"image": config.scheduler.image, "resources": side(config.scheduler.effective_resources())},
        "workers": {
            "numberOfWorkers": config.workers.number_of_workers,
            "image": config.workers.image,
            "resources": side(config.workers.effective_resources()),
        },
    }
    if config.scheduler_address is not None:
        out["schedulerAddress"] = config.scheduler_address
    return out
