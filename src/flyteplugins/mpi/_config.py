"""The MPI plugin's configuration types, with flytekit's names and defaults. Importing them loads no MPI.

``MPIJob`` is the MPI operator's job: one ``launcher`` that runs ``mpirun`` and ``worker.replicas`` workers with
``slots`` ranks each, so ``worker.replicas * slots`` ranks in all. ``HorovodJob`` is the same job launched with
``horovodrun`` and Horovod's settings.
"""

from __future__ import annotations

import warnings
from typing import Any

import msgspec

from flyte import Resources
from flyte.extend import ConfigMeta
from flyteplugins.kubeflow.config import (
    CleanPodPolicy,
    RestartPolicy,
    RunPolicy,
    check_command,
    check_optional_count,
    check_replica,
    check_typed,
)

__all__ = ["CleanPodPolicy", "HorovodJob", "Launcher", "MPIJob", "RestartPolicy", "RunPolicy", "Worker"]

HOROVOD_LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "FATAL")


class _Replicas(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """The fields of both replica groups, flytekit's: command, image, requests, limits, replicas, restart_policy."""

    __positional__ = ("command", "image", "requests", "limits", "replicas", "restart_policy")

    command: list[str] | None = None
    image: str | None = None
    requests: Resources | dict[str, str | int | float] | None = None
    limits: Resources | dict[str, str | int | float] | None = None
    replicas: int | None = None
    restart_policy: RestartPolicy | None = None

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_replica(owner, self)
        check_command(owner, self.command)
        check_optional_count(owner, "replicas", self.replicas, minimum=1)


class Launcher(_Replicas, frozen=True, kw_only=True):  # type: ignore[metaclass]
    """The launcher replica: it runs ``mpirun`` over the workers. ``command`` replaces that whole command line (the
    task's function is then not run; the task returns ``None``). Always one replica."""

    def __post_init__(self) -> None:
        if self.replicas is not None and self.replicas != 1:
            raise ValueError(f"Launcher.replicas: an MPI job has exactly 1 launcher, got {self.replicas}")
        super().__post_init__()


class Worker(_Replicas, frozen=True, kw_only=True):  # type: ignore[metaclass]
    """The worker replicas, each running ``slots`` ranks. ``command`` is the worker pods' command on Kubernetes
    (default: the operator's ``sshd``); the ranks themselves are what the launcher's ``mpirun`` starts."""


class MPIJob(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """An MPI operator job: ``worker.replicas * slots`` ranks started by the launcher's ``mpirun``.

    - ``launcher`` / ``worker``: the replica groups (image, requests/limits, restart policy; ``Launcher.command``
      replaces the launcher's command line).
    - ``slots``: ranks per worker (the hostfile's ``slots=``), default 1.
    - ``run_policy``: the Kubeflow job's policy (``active_deadline_seconds`` is enforced locally too).
    - ``num_workers`` / ``num_launcher_replicas``: deprecated spellings of ``worker.replicas`` and
      ``launcher.replicas``; they still work, with a DeprecationWarning.

    ``worker.replicas`` defaults to 1. On this machine every rank is a local process under a real ``mpirun``.
    """

    __positional__ = ("launcher", "worker", "run_policy", "slots", "num_launcher_replicas", "num_workers")

    launcher: Launcher = msgspec.field(default_factory=Launcher)
    worker: Worker = msgspec.field(default_factory=Worker)
    run_policy: RunPolicy | None = None
    slots: int = 1
    num_launcher_replicas: int | None = None
    num_workers: int | None = None

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_typed(owner, "launcher", self.launcher, Launcher)
        check_typed(owner, "worker", self.worker, Worker)
        check_typed(owner, "run_policy", self.run_policy, RunPolicy, optional=True)
        if isinstance(self.slots, bool) or not isinstance(self.slots, int):
            raise TypeError(f"{owner}.slots: expected an int, got {type(self.slots).__name__}")
        if self.slots < 1:
            raise ValueError(f"{owner}.slots: ranks per worker must be >= 1, got {self.slots}")
        if self.num_workers is not None:
            check_optional_count(owner, "num_workers", self.num_workers, minimum=1)
            if self.worker.replicas is not None:
                raise ValueError(f"{owner}: give worker.replicas or the deprecated num_workers, not both")
            warnings.warn(f"{owner}.num_workers is deprecated; use worker=Worker(replicas={self.num_workers})",
                          DeprecationWarning, stacklevel=3)
        if self.num_launcher_replicas is not None:
            check_optional_count(owner, "num_launcher_replicas", self.num_launcher_replicas, minimum=1)
            if self.num_launcher_replicas != 1:
                raise ValueError(f"{owner}.num_launcher_replicas: an MPI job has exactly 1 launcher, "
                                 f"got {self.num_launcher_replicas}")
            if self.launcher.replicas is not None:
                raise ValueError(f"{owner}: give launcher.replicas or the deprecated num_launcher_replicas, not both")
            warnings.warn(f"{owner}.num_launcher_replicas is deprecated; use launcher=Launcher(replicas=1)",
                          DeprecationWarning, stacklevel=3)

    @property
    def worker_replicas(self) -> int:
        """Workers in the job: ``worker.replicas``, else the deprecated ``num_workers``, else 1."""
        return self.worker.replicas or self.num_workers or 1

    @property
    def num_procs(self) -> int:
        """Ranks in the job (``mpirun -np``): workers times slots."""
        return self.worker_replicas * self.slots


class HorovodJob(MPIJob, frozen=True, kw_only=True):  # type: ignore[metaclass]
    """An MPI job launched with ``horovodrun``: ``MPIJob``'s fields plus Horovod's settings.

    - ``verbose``: Horovod's verbose launcher output (default False).
    - ``log_level``: ``HOROVOD_LOG_LEVEL`` (TRACE, DEBUG, INFO, WARNING, ERROR, FATAL; default INFO).
    - ``discovery_script_path``: the host discovery script of elastic Horovod on Kubernetes (the MPI operator
      provides ``/etc/mpi/discover_hosts.sh``).
    - ``elastic_timeout``: seconds elastic Horovod waits for hosts (``HOROVOD_ELASTIC_TIMEOUT``; default 1200).
    """

    __positional__ = ("worker", "launcher", "run_policy", "slots", "verbose", "log_level", "discovery_script_path",
                      "elastic_timeout", "num_launcher_replicas", "num_workers")

    verbose: bool | None = False
    log_level: str | None = "INFO"
    discovery_script_path: str | None = "/etc/mpi/discover_hosts.sh"
    elastic_timeout: int | None = 1200

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.verbose is not None and not isinstance(self.verbose, bool):
            raise TypeError(f"HorovodJob.verbose: expected True, False or None, got {self.verbose!r}")
        if self.log_level is not None and (not isinstance(self.log_level, str)
                                           or self.log_level.upper() not in HOROVOD_LOG_LEVELS):
            raise ValueError(f"HorovodJob.log_level: {self.log_level!r}; allowed: {', '.join(HOROVOD_LOG_LEVELS)}")
        if self.discovery_script_path is not None and (not isinstance(self.discovery_script_path, str)
                                                       or not self.discovery_script_path):
            raise ValueError(f"HorovodJob.discovery_script_path: expected a path, got {self.discovery_script_path!r}")
        check_optional_count("HorovodJob", "elastic_timeout", self.elastic_timeout, minimum=1)


def horovod_environment(config: Any) -> dict[str, str]:
    """Horovod's settings as the variables Horovod reads in every rank (what ``horovodrun`` would export)."""
    if not isinstance(config, HorovodJob):
        return {}
    env = {}
    if config.log_level:
        env["HOROVOD_LOG_LEVEL"] = config.log_level.upper()
    if config.elastic_timeout is not None:
        env["HOROVOD_ELASTIC_TIMEOUT"] = str(config.elastic_timeout)
    return env
