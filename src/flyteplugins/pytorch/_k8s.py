"""PyTorch tasks on Kubernetes: a ``PyTorchJob`` (kubeflow.org/v1) of the Kubeflow training operator.

- ``Elastic`` with ``nnodes > 1`` or a range: Worker replicas with an ``elasticPolicy`` (min/max replicas, c10d
  rendezvous, ``nProcPerNode``, ``maxRestarts``); every pod runs the task, whose elastic launcher reads the
  operator's ``PET_*`` variables and joins the rendezvous; global rank 0's value is the task's (every node returns
  it). ``Elastic(nnodes=1)`` runs as a plain Job, as flytekit does.
- ``PyTorch(master, worker)``: Master and Worker replica specs (image, requests/limits, restart policy, replicas).
- ``run_policy`` becomes ``runPolicy`` (clean pod policy, TTL, active deadline, backoff limit); NCCL settings are
  env vars of every replica.

Replicas restart ``Never`` unless the config says otherwise, as flytekit's default: a failed pod fails the job,
and the SDK's retries make a new attempt. The primary pod is the master, or worker 0 (``training.kubeflow.org/
replica-index: 0``) without one: every worker of an elastic job shares the template, and so the primary label. A
worker of a master/worker job leaves its own documents under the outputs' ``replicas/worker``, so that only rank
0's value or error is the call's. Terminal: the latest True condition, Succeeded or Failed.
With ``pytorch_resource: TrainJob`` in the settings, the same configs become Trainer v2 TrainJobs instead.

Run as ``python -m flyteplugins.pytorch._k8s <flyte.runtime arguments>``, this module is the node command of a
``PyTorch(master, worker)`` TrainJob (see :func:`trainjob_node_main`).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from flyte._k8s.pods import RemoteCall
from flyte._k8s.resources import KubernetesResource, Outcome, condition_outcome, register
from flyteplugins.kubeflow.k8s import KubeflowJobResource, pod_of_index, replica_resources, run_policy_spec

from ._config import Elastic, PyTorch
from ._nccl import nccl_environment

CONTAINER = "pytorch"
NEVER = "Never"
REPLICA_INDEX = "training.kubeflow.org/replica-index"
# Trainer v2: the JobSet's Job index and the Indexed Job's completion index of a node pod.
JOB_INDEX = "jobset.sigs.k8s.io/job-index"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
NODE_COMMAND = ["python", "-m", "flyteplugins.pytorch._k8s"]
WORKER_OUTPUTS = "replicas/worker"


class PyTorchJobResource(KubeflowJobResource):
    api_version = "kubeflow.org/v1"
    kind = "PyTorchJob"
    plural = "pytorchjobs"

    def primary_container(self, call: RemoteCall) -> str:
        return CONTAINER

    def primary_pod(self, pods: list[dict[str, Any]]) -> dict[str, Any] | None:
        return pod_of_index(pods, {REPLICA_INDEX: "0"})

    def handles(self, config: Any) -> bool:
        return not (isinstance(config, Elastic) and config.node_range == (1, 1))  # one node: a plain Job

    def variant(self, settings: Any) -> KubernetesResource:
        if getattr(settings, "pytorch_resource", "PyTorchJob") == "TrainJob":
            return TrainJobResource()
        return self

    def _replica(self, call: RemoteCall, *, replicas: int, primary: bool, restart: str, image: str | None,
                 resources: dict[str, Any] | None, args: list[str] | None = None) -> dict[str, Any]:
        nccl = [{"name": k, "value": v} for k, v in sorted(nccl_environment(call.task.plugin_config).items())]
        template = call.pod_template(restart_policy=restart, primary=primary, container_name=CONTAINER,
                                     extra_env=nccl, resources=resources or None, args=args)
        if image:
            template["spec"]["containers"][0]["image"] = image
        return {"replicas": replicas, "restartPolicy": restart, "template": template}

    def build(self, call: RemoteCall) -> dict[str, Any]:
        config = call.task.plugin_config
        spec: dict[str, Any] = {"runPolicy": run_policy_spec(config.run_policy, call)}
        if isinstance(config, Elastic):
            low, high = config.node_range
            spec["elasticPolicy"] = {"minReplicas": low, "maxReplicas": high, "rdzvBackend": config.rdzv_backend,
                                     "nProcPerNode": config.nproc_per_node, "maxRestarts": config.max_restarts}
            spec["nprocPerNode"] = str(config.nproc_per_node)
            # One template for every worker, so each carries the primary label: primary_pod picks worker 0.
            spec["pytorchReplicaSpecs"] = {"Worker": self._replica(call, replicas=high, primary=True,
                                                                   restart=NEVER, image=None, resources=None)}
        else:
            master, worker = config.master, config.worker
            specs = {"Master": self._replica(
                call, replicas=1, primary=True,
                restart=master.restart_policy.value if master.restart_policy else NEVER, image=master.image,
                resources=replica_resources(master.requests, master.limits))}
            if worker.replicas:
                specs["Worker"] = self._replica(
                    call, replicas=worker.replicas, primary=False,
                    restart=worker.restart_policy.value if worker.restart_policy else NEVER,
                    image=worker.image, resources=replica_resources(worker.requests, worker.limits),
                    args=outputs_under(call.args, WORKER_OUTPUTS))
            spec["pytorchReplicaSpecs"] = specs
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": call.metadata(), "spec": spec}

    def outcome(self, obj: dict[str, Any]) -> Outcome | None:
        conditions = [c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("status") == "True"]
        if not conditions:
            return None
        latest = conditions[-1]
        if latest.get("type") == "Succeeded":
            return Outcome(True, latest.get("reason", "Succeeded"), latest.get("message", ""))
        if latest.get("type") == "Failed":
            return Outcome(False, latest.get("reason", "Failed"), latest.get("message", ""))
        return None


class TrainJobResource(KubernetesResource):
    """Kubeflow Trainer v2: a ``TrainJob`` (trainer.kubeflow.org/v1alpha1) on a ClusterTrainingRuntime
    (``training_runtime`` in the settings, default ``torch-distributed``), chosen with ``pytorch_resource:
    TrainJob``. ``numNodes`` is the node count (an elastic range runs at its maximum: TrainJob has no elastic
    policy), ``numProcPerNode`` the processes per node. An ``Elastic`` task's nodes run the task, whose launcher
    reads the ``PET_*`` variables Trainer injects; a ``PyTorch(master, worker)`` task runs one process per node
    through :func:`trainjob_node_main`, which gives it the ``RANK``/``WORLD_SIZE``/``MASTER_*`` a PyTorchJob would
    (Trainer sets only ``PET_*``, after the trainer's own env, so ``$(PET_...)`` references there stay unexpanded).
    The call's labels, identity and secret volumes and mounts reach the node pods through a runtime patch. Node 0
    (completion index 0 of the JobSet's first Job) is the primary pod. Terminal: the Complete or Failed condition.

    Trainer's stock runtimes leave the node pods' ``restartPolicy`` to JobSet (``OnFailure``) and the Job's
    ``backoffLimit`` at 6: a failing node is restarted in place, reruns the task, and the call ends only when the
    Job gives up. A runtime whose node Job has ``restartPolicy: Never`` and ``backoffLimit: 0`` fails the call at
    once and leaves retries to the SDK."""

    api_version = "trainer.kubeflow.org/v1alpha1"
    kind = "TrainJob"
    plural = "trainjobs"

    def primary_container(self, call: RemoteCall) -> str:
        return "node"

    def primary_pod(self, pods: list[dict[str, Any]]) -> dict[str, Any] | None:
        return pod_of_index(pods, {JOB_INDEX: "0", COMPLETION_INDEX: "0"})

    def handles(self, config: Any) -> bool:
        return PyTorchJobResource().handles(config)

    def build(self, call: RemoteCall) -> dict[str, Any]:
        config = call.task.plugin_config
        pod = call.pod_template(container_name="node")
        container = pod["spec"]["containers"][0]
        nccl = [{"name": k, "value": v} for k, v in sorted(nccl_environment(config).items())]
        if isinstance(config, Elastic):
            nodes, per_node = config.node_range[1], config.nproc_per_node
            resources = container.get("resources")
            command = container["command"]
        else:
            nodes, per_node = 1 + config.worker.replicas, 1
            resources = replica_resources(config.master.requests, config.master.limits) or container.get("resources")
            command = NODE_COMMAND
        trainer: dict[str, Any] = {"image": container["image"], "command": command,
                                   "args": container["args"],
                                   # The trainer has no envFrom: the storage Secret's keys come one by one.
                                   "env": [*container.get("env", []), *nccl, *call.storage_credentials_env()],
                                   "numNodes": nodes, "numProcPerNode": per_node}
        if resources:
            trainer["resourcesPerNode"] = resources
        pod_spec = {key: pod["spec"][key] for key in ("serviceAccountName", "imagePullSecrets", "volumes")
                    if key in pod["spec"]}
        if container.get("volumeMounts"):
            pod_spec["containers"] = [{"name": "node", "volumeMounts": container["volumeMounts"]}]
        patch = {"manager": "flyte.org/flyte-sdk", "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [
            {"name": "node", "template": {"spec": {"template": {"metadata": {"labels": pod["metadata"]["labels"]},
                                                                **({"spec": pod_spec} if pod_spec else {})}}}}]}}}}
        spec: dict[str, Any] = {
            "runtimeRef": {"apiGroup": "trainer.kubeflow.org", "kind": "ClusterTrainingRuntime",
                           "name": call.settings.training_runtime},
            "trainer": trainer,
            "runtimePatches": [patch],
        }
        if config.run_policy is not None and config.run_policy.active_deadline_seconds is not None:
            spec["activeDeadlineSeconds"] = config.run_policy.active_deadline_seconds
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": call.metadata(), "spec": spec}

    def started(self, obj: dict[str, Any]) -> bool:
        return bool((obj.get("status") or {}).get("jobsStatus"))

    def outcome(self, obj: dict[str, Any]) -> Outcome | None:
        return condition_outcome(obj, "Complete", "Failed")


def outputs_under(args: list[str], folder: str) -> list[str]:
    """``flyte.runtime``'s arguments with ``--outputs`` moved to a sub-folder: a replica other than rank 0 leaves
    its documents (an error of its own, say) there, where they cannot overwrite rank 0's, which are the call's."""
    out = list(args)
    at = out.index("--outputs") + 1
    out[at] = f"{out[at].rstrip('/')}/{folder}"
    return out


def trainjob_node_main(argv: list[str] | None = None) -> int:
    """One node of a ``PyTorch(master, worker)`` TrainJob: the process of rank ``PET_NODE_RANK`` (one per node),
    given the variables ``torch.distributed`` and the task's replica path read, from Trainer's ``PET_*``; then
    ``flyte.runtime`` with these arguments (rank 0's documents are the call's; other ranks write theirs below)."""
    from flyte.runtime import main

    env = os.environ
    rank = env.get("RANK") or env.get("PET_NODE_RANK") or "0"
    env["RANK"] = rank
    env.setdefault("LOCAL_RANK", "0")
    env.setdefault("WORLD_SIZE", env.get("PET_NNODES", "1"))
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not env.get(name) and env.get(f"PET_{name}"):
            env[name] = env[f"PET_{name}"]
    args = list(sys.argv[1:] if argv is None else argv)
    return main(args if rank == "0" else outputs_under(args, f"replicas/rank-{rank}"))


if __name__ == "__main__":  # a TrainJob node: registering resources here would only duplicate the module's
    sys.exit(trainjob_node_main())

register(Elastic, PyTorchJobResource())
register(PyTorch, PyTorchJobResource())
