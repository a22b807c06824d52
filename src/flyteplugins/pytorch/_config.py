"""The plugin's configuration types. Frozen, typed, validated where they are written; importing them loads no torch.

``Elastic`` describes a torchrun-style job (``nnodes`` agents, ``nproc_per_node`` workers each). ``PyTorch`` is the
Kubeflow operator's fixed-size job (one master, ``worker.replicas`` workers); on this machine it runs as a
single-node elastic job with ``1 + worker.replicas`` processes.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from flyte import Resources
from flyte.extend import ConfigMeta
from flyteplugins.kubeflow.config import (
    CleanPodPolicy,
    RestartPolicy,
    RunPolicy,
    check_count,
    check_optional_count,
    check_optional_seconds,
    check_replica,
)

__all__ = ["CleanPodPolicy", "Elastic", "Master", "NcclSettings", "PyTorch", "RestartPolicy", "RunPolicy", "Worker"]

RDZV_BACKENDS = ("c10d", "static", "etcd", "etcd-v2")
START_METHODS = ("spawn", "fork", "forkserver")
_ENDPOINT = re.compile(r"^\[?[A-Za-z0-9_.:\-]+\]?(:\d{1,5})?$")


class Master(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """The single master replica of a Kubeflow PyTorch job."""

    image: str | None = None
    requests: Resources | dict[str, str | int | float] | None = None
    limits: Resources | dict[str, str | int | float] | None = None
    restart_policy: RestartPolicy | None = None

    def __post_init__(self) -> None:
        check_replica("Master", self)


class Worker(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """The worker replicas of a Kubeflow PyTorch job."""

    image: str | None = None
    requests: Resources | dict[str, str | int | float] | None = None
    limits: Resources | dict[str, str | int | float] | None = None
    replicas: int = 1
    restart_policy: RestartPolicy | None = None

    def __post_init__(self) -> None:
        check_replica("Worker", self)
        check_count("Worker", "replicas", self.replicas)


class NcclSettings(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """NCCL failure-detection knobs shared by ``Elastic`` and ``PyTorch``. ``None`` leaves a setting to the
    installed torch (its own default applies); see :mod:`flyteplugins.pytorch._nccl` for what each one does."""

    nccl_heartbeat_timeout_sec: int | None = None
    nccl_async_error_handling: bool | int | None = None
    nccl_collective_timeout_sec: int | float | None = None
    nccl_enable_monitoring: bool | None = None

    def _check_nccl(self, owner: str) -> None:
        check_optional_count(owner, "nccl_heartbeat_timeout_sec", self.nccl_heartbeat_timeout_sec, minimum=1)
        value = self.nccl_async_error_handling
        if value is not None and not isinstance(value, bool) and (not isinstance(value, int) or value not in (0, 1, 2, 3)):
            raise ValueError(f"{owner}.nccl_async_error_handling: {value!r}; allowed: None, True, False or a mode "
                             "0 (off), 1 (tear down), 2 (clean up only), 3 (skip clean up)")
        check_optional_seconds(owner, "nccl_collective_timeout_sec", self.nccl_collective_timeout_sec)
        if self.nccl_enable_monitoring is not None and not isinstance(self.nccl_enable_monitoring, bool):
            raise TypeError(f"{owner}.nccl_enable_monitoring: expected True, False or None, "
                            f"got {self.nccl_enable_monitoring!r}")


def parse_nnodes(owner: str, nnodes: Any) -> tuple[int, int]:
    """``2`` -> (2, 2); ``"1:2"`` -> (1, 2). Raises with the field name on anything else."""
    if isinstance(nnodes, bool):
        raise TypeError(f"{owner}.nnodes: expected an int or 'min:max', got {nnodes!r}")
    if isinstance(nnodes, int):
        low = high = nnodes
    elif isinstance(nnodes, str):
        parts = nnodes.split(":")
        if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"{owner}.nnodes: {nnodes!r} is not a node count; use an int such as 2 or a range "
                             "'min:max' such as '1:2'")
        low, high = int(parts[0]), int(parts[-1])
    else:
        raise TypeError(f"{owner}.nnodes: expected an int or 'min:max', got {type(nnodes).__name__}")
    if low < 1:
        raise ValueError(f"{owner}.nnodes: the node count must be >= 1, got {nnodes!r}")
    if low > high:
        raise ValueError(f"{owner}.nnodes: {nnodes!r} has min > max; write 'min:max' with min <= max")
    return low, high


class Elastic(NcclSettings, frozen=True, kw_only=True):  # type: ignore[metaclass]
    """A torch.distributed.elastic (torchrun) job: ``nnodes`` agents, each starting ``nproc_per_node`` workers.

    - ``nnodes``: node count, or a range ``"min:max"`` for elastic membership.
    - ``nproc_per_node``: worker processes per node; each gets RANK, LOCAL_RANK, WORLD_SIZE, GROUP_RANK,
      MASTER_ADDR and MASTER_PORT, so ``torch.distributed.init_process_group()`` works unchanged.
    - ``rdzv_backend`` / ``rdzv_endpoint`` / ``rdzv_configs``: how the agents meet. A single node needs no
      endpoint (a free local port is used). Several nodes need a shared ``host:port`` (or ``PET_RDZV_ENDPOINT``,
      as the Kubeflow operator sets). ``rdzv_configs`` defaults to 15 minute ``timeout``/``join_timeout``.
    - ``start_method``: how the agent starts workers (``spawn``, ``fork``, ``forkserver``).
    - ``monitor_interval``: seconds between the agent's checks of its workers.
    - ``max_restarts``: worker-group restarts before the job fails.
    - ``zombie_watchdog_interval_sec``: how often the watchdog checks for the agent hang after all workers died
      (``None`` turns it off). A hang is reported once all workers stayed unreaped zombies for three intervals
      (or ``monitor_interval`` plus one, if longer): about 2 s after the deaths by default.
    - ``nccl_*``: NCCL failure detection, see :class:`NcclSettings`.
    - ``run_policy``: the Kubeflow job's policy (``active_deadline_seconds`` is also enforced locally).
    """

    __positional__ = ("nnodes", "nproc_per_node", "rdzv_backend", "run_policy", "monitor_interval", "max_restarts", "rdzv_configs", "nccl_heartbeat_timeout_sec", "nccl_async_error_handling", "nccl_collective_timeout_sec", "nccl_enable_monitoring")

    nnodes: int | str = 1
    nproc_per_node: int = 1
    rdzv_backend: str = "c10d"
    rdzv_endpoint: str | None = None
    rdzv_configs: dict[str, Any] = msgspec.field(default_factory=lambda: {"timeout": 900, "join_timeout": 900})
    start_method: str = "spawn"
    monitor_interval: int | float = 0.1
    max_restarts: int = 0
    zombie_watchdog_interval_sec: int | float | None = 0.5
    run_policy: RunPolicy | None = None

    def __post_init__(self) -> None:
        parse_nnodes("Elastic", self.nnodes)
        if isinstance(self.nproc_per_node, bool) or not isinstance(self.nproc_per_node, int):
            raise TypeError(f"Elastic.nproc_per_node: expected an int, got {type(self.nproc_per_node).__name__}")
        if self.nproc_per_node < 1:
            raise ValueError(f"Elastic.nproc_per_node: must be >= 1, got {self.nproc_per_node}")
        if self.rdzv_backend not in RDZV_BACKENDS:
            raise ValueError(f"Elastic.rdzv_backend: {self.rdzv_backend!r} is not a rendezvous backend; "
                             f"allowed: {', '.join(RDZV_BACKENDS)}")
        if self.rdzv_endpoint is not None and (not isinstance(self.rdzv_endpoint, str)
                                               or not _ENDPOINT.match(self.rdzv_endpoint)):
            raise ValueError(f"Elastic.rdzv_endpoint: {self.rdzv_endpoint!r} is not 'host:port'")
        if not isinstance(self.rdzv_configs, dict):
            raise TypeError(f"Elastic.rdzv_configs: expected a dict, got {type(self.rdzv_configs).__name__}")
        for key, value in self.rdzv_configs.items():
            if not isinstance(key, str):
                raise TypeError(f"Elastic.rdzv_configs: keys must be strings, got {key!r}")
            if key in ("timeout", "join_timeout", "last_call_timeout", "close_timeout", "read_timeout"):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                    raise ValueError(f"Elastic.rdzv_configs[{key!r}]: expected seconds > 0, got {value!r}")
        if self.start_method not in START_METHODS:
            raise ValueError(f"Elastic.start_method: {self.start_method!r}; allowed: {', '.join(START_METHODS)}")
        check_optional_seconds("Elastic", "monitor_interval", self.monitor_interval)
        if isinstance(self.max_restarts, bool) or not isinstance(self.max_restarts, int) or self.max_restarts < 0:
            raise ValueError(f"Elastic.max_restarts: expected an int >= 0, got {self.max_restarts!r}")
        check_optional_seconds("Elastic", "zombie_watchdog_interval_sec", self.zombie_watchdog_interval_sec)
        if self.run_policy is not None and not isinstance(self.run_policy, RunPolicy):
            raise TypeError(f"Elastic.run_policy: expected a RunPolicy or None, got {type(self.run_policy).__name__}")
        self._check_nccl("Elastic")

    @property
    def node_range(self) -> tuple[int, int]:
        return parse_nnodes("Elastic", self.nnodes)


class PyTorch(NcclSettings, frozen=True, kw_only=True):  # type: ignore[metaclass]
    """A Kubeflow PyTorch operator job of fixed size: one ``master`` and ``worker.replicas`` workers.

    Here it runs as one elastic node with ``1 + worker.replicas`` processes (rank 0 is the master).
    """

    master: Master = msgspec.field(default_factory=Master)
    worker: Worker = msgspec.field(default_factory=Worker)
    run_policy: RunPolicy | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.master, Master):
            raise TypeError(f"PyTorch.master: expected a Master, got {type(self.master).__name__}")
        if not isinstance(self.worker, Worker):
            raise TypeError(f"PyTorch.worker: expected a Worker, got {type(self.worker).__name__}")
        if self.run_policy is not None and not isinstance(self.run_policy, RunPolicy):
            raise TypeError(f"PyTorch.run_policy: expected a RunPolicy or None, got {type(self.run_policy).__name__}")
        self._check_nccl("PyTorch")

    def as_elastic(self) -> Elastic:
        """The equivalent single-node elastic job that runs this config on one machine."""
        return Elastic(nnodes=1, nproc_per_node=1 + self.worker.replicas, run_policy=self.run_policy,
                       nccl_heartbeat_timeout_sec=self.nccl_heartbeat_timeout_sec,
                       nccl_async_error_handling=self.nccl_async_error_handling,
                       nccl_collective_timeout_sec=self.nccl_collective_timeout_sec,
                       nccl_enable_monitoring=self.nccl_enable_monitoring)
