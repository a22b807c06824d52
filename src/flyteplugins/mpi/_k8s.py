"""MPI tasks on Kubernetes: an ``MPIJob`` of the MPI operator (``kubeflow.org/v2beta1``, the default) or of the
training operator (``kubeflow.org/v1``, with ``mpi_operator: training-operator`` in the settings; the two share the
CRD name, a cluster has one).

- Launcher (1 replica, the primary pod): runs ``mpirun`` (``horovodrun`` for a HorovodJob) with
  ``worker.replicas * slots`` ranks, each rank running ``python -m flyte.runtime`` for this call; rank 0 writes the
  outputs. ``Launcher.command`` replaces that command line. The environment the ranks need (the tier's settings, the
  store's endpoint and credentials, the task's variables) is exported to them with ``-x``: ranks started on the
  workers do not inherit the pods' environment.
- Workers: ``worker.replicas`` pods running ``Worker.command``, by default ``/usr/sbin/sshd -De`` (the MPI operator
  reaches the workers over SSH: the image needs sshd and Open MPI, as the operator's own examples do).
- ``slots`` → ``slotsPerWorker``; ``run_policy`` → ``runPolicy``; images, requests/limits and restart policies per
  replica; v2beta1 also gets ``mpiImplementation: OpenMPI``.

Terminal: the ``Succeeded`` or ``Failed`` condition (both versions).
"""

from __future__ import annotations

from typing import Any

from flyte._k8s.pods import STORAGE_CREDENTIAL_VARS, RemoteCall
from flyte._k8s.resources import KubernetesResource, register
from flyteplugins.kubeflow.k8s import KubeflowJobResource, replica_resources, run_policy_spec

from ._config import HorovodJob, MPIJob, horovod_environment
from ._launch import kubernetes_launcher_command

CONTAINER = "mpi"  # the training operator's default MPI container name (its mainContainer)
HOSTFILE = "/etc/mpi/hostfile"  # where both operators mount the hostfile
DEFAULT_WORKER_COMMAND = ["/usr/sbin/sshd", "-De"]


def _exported(call: RemoteCall, extra: dict[str, str]) -> list[str]:
    """``-x NAME`` for each variable the ranks need from the launcher's environment."""
    names = [entry["name"] for entry in call.env()] + sorted(extra)
    if call.settings.storage_env_secret:
        names += STORAGE_CREDENTIAL_VARS  # the launcher got them from the Secret
    options: list[str] = []
    for name in dict.fromkeys(names):
        options += ["-x", name]
    return options


class MPIJobResource(KubeflowJobResource):
    api_version = "kubeflow.org/v2beta1"
    kind = "MPIJob"
    plural = "mpijobs"

    def primary_container(self, call: RemoteCall) -> str:
        return CONTAINER

    def variant(self, settings: Any) -> KubernetesResource:
        if getattr(settings, "mpi_operator", "mpi-operator") == "training-operator":
            return TrainingOperatorMPIJobResource()
        return self

    def launcher_command(self, call: RemoteCall, config: MPIJob, extra: dict[str, str]) -> list[str]:
        program = [*call.command, *call.args]
        command = kubernetes_launcher_command(config, program)
        if config.launcher.command or isinstance(config, HorovodJob):
            return command
        at = command.index("-np")
        return [*command[:at], *_exported(call, extra), *command[at:]]

    def build(self, call: RemoteCall) -> dict[str, Any]:
        config: MPIJob = call.task.plugin_config
        launcher, worker = config.launcher, config.worker
        launcher_env = {"PRTE_MCA_prte_default_hostfile": HOSTFILE,  # Open MPI 5 reads this name, not orte's
                        **horovod_environment(config)}
        extra = [{"name": k, "value": v} for k, v in launcher_env.items()]
        # The launcher runs once, like a plain call's Job (backoffLimit 0): the SDK's retries make new attempts.
        launcher_template = call.pod_template(
            restart_policy=_restart(launcher.restart_policy, "Never"), primary=True, container_name=CONTAINER,
            command=self.launcher_command(call, config, launcher_env), args=[], extra_env=extra,
            resources=replica_resources(launcher.requests, launcher.limits) or None)
        worker_template = call.pod_template(
            restart_policy=_restart(worker.restart_policy, "OnFailure"), primary=False, container_name=CONTAINER,
            command=list(worker.command or DEFAULT_WORKER_COMMAND), args=[],
            resources=replica_resources(worker.requests, worker.limits) or None)
        for template, replica in ((launcher_template, launcher), (worker_template, worker)):
            if replica.image:
                template["spec"]["containers"][0]["image"] = replica.image
        specs = {
            "Launcher": {"replicas": 1, "restartPolicy": _restart(launcher.restart_policy, "Never"),
                         "template": launcher_template},
            "Worker": {"replicas": config.worker_replicas, "restartPolicy": _restart(worker.restart_policy,
                                                                                    "OnFailure"),
                       "template": worker_template},
        }
        run_policy = {"backoffLimit": 0, **run_policy_spec(config.run_policy, call)}
        spec: dict[str, Any] = {"slotsPerWorker": config.slots, "runPolicy": run_policy, "mpiReplicaSpecs": specs}
        spec.update(self.implementation())
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": call.metadata(), "spec": spec}

    def implementation(self) -> dict[str, Any]:
        return {"mpiImplementation": "OpenMPI"}


class TrainingOperatorMPIJobResource(MPIJobResource):
    """The training operator's ``kubeflow.org/v1`` MPIJob: the same replica specs, no ``mpiImplementation``."""

    api_version = "kubeflow.org/v1"

    def implementation(self) -> dict[str, Any]:
        return {}


def _restart(policy: Any, default: str) -> str:
    return policy.value if policy is not None else default


register(MPIJob, MPIJobResource())
