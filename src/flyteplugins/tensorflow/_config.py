"""The plugin's configuration types (flytekit's ``TfJob``, ``Chief``, ``PS``, ``Worker``, ``Evaluator``). Frozen,
typed, validated where they are written; importing them loads no TensorFlow.

A replica group named in a ``TfJob`` has one replica unless it says otherwise (``Chief()`` is a chief); the groups
a ``TfJob`` leaves out have none, but for one worker. The Kubeflow policies (``RunPolicy``, ``CleanPodPolicy``,
``RestartPolicy``) are the training operator's, shared by the Kubeflow plugins (:mod:`flyteplugins.kubeflow`).
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from flyte import Resources
from flyte.extend import ConfigMeta
from flyteplugins.kubeflow.config import (
    CleanPodPolicy,
    RestartPolicy,
    RunPolicy,
    check_count,
    check_replica,
    check_typed,
)

__all__ = ["PS", "Chief", "CleanPodPolicy", "Evaluator", "RestartPolicy", "RunPolicy", "TfJob", "Worker"]

class _ReplicaGroup(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """What every replica group has (flytekit's fields, in its order); ``most`` bounds its replicas."""

    __positional__ = ("image", "requests", "limits", "replicas", "restart_policy")
    most: ClassVar[int | None] = None

    image: str | None = None
    requests: Resources | dict[str, str | int | float] | None = None
    limits: Resources | dict[str, str | int | float] | None = None
    replicas: int = 1
    restart_policy: RestartPolicy | None = None

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_replica(owner, self)
        check_count(owner, "replicas", self.replicas)
        count = self.replicas
        if self.most is not None and count > self.most:
            raise ValueError(f"{owner}.replicas: a TensorFlow cluster has at most {self.most} {owner.lower()}, "
                             f"got {count}")


class Chief(_ReplicaGroup, frozen=True, kw_only=True):  # type: ignore[metaclass]
    """The chief: the replica that coordinates (``ParameterServerStrategy``) or trains like a worker and also saves
    (``MultiWorkerMirroredStrategy``). Its value is the task's. At most one."""

    most = 1


class PS(_ReplicaGroup, frozen=True, kw_only=True):  # type: ignore[metaclass]
    """Parameter servers: they hold the variables and serve until the job ends (stopped once the chief is done)."""


class Worker(_ReplicaGroup, frozen=True, kw_only=True):  # type: ignore[metaclass]
    """The workers. Without a chief, worker 0's value is the task's."""


class Evaluator(_ReplicaGroup, frozen=True, kw_only=True):  # type: ignore[metaclass]
    """Evaluators: side replicas outside the training cluster (their TF_CONFIG names the cluster, which does not list
    them), as TensorFlow's sidecar evaluation expects."""


class TfJob(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """A Kubeflow TFJob: ``chief``, ``ps``, ``worker`` and ``evaluator`` replica groups and the ``run_policy``.

    Every replica runs the task function with the ``TF_CONFIG`` the training operator gives it (the cluster spec,
    its own type and index), so ``tf.distribute`` strategies find their cluster. On this machine each replica is a
    process of its own on free loopback ports; on Kubernetes each is a pod of a ``TFJob``. The task's value is the
    chief's, or worker 0's without a chief. ``run_policy.active_deadline_seconds`` is enforced on this machine too.
    Defaults: no chief, no parameter server, no evaluator, one worker.
    """

    __positional__ = ("chief", "ps", "worker", "evaluator", "run_policy")

    chief: Chief = msgspec.field(default_factory=lambda: Chief(replicas=0))
    ps: PS = msgspec.field(default_factory=lambda: PS(replicas=0))
    worker: Worker = msgspec.field(default_factory=Worker)
    evaluator: Evaluator = msgspec.field(default_factory=lambda: Evaluator(replicas=0))
    run_policy: RunPolicy | None = None

    def __post_init__(self) -> None:
        for name, kind in (("chief", Chief), ("ps", PS), ("worker", Worker), ("evaluator", Evaluator)):
            check_typed("TfJob", name, getattr(self, name), kind)
        check_typed("TfJob", "run_policy", self.run_policy, RunPolicy, optional=True)
        if self.chief.replicas + self.worker.replicas == 0:
            raise ValueError("TfJob.worker: a job needs a chief or at least one worker, whose value is the task's "
                             "(chief.replicas=0, worker.replicas=0)")
