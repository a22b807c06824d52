"""PyTorch tasks on Kubernetes: a ``PyTorchJob`` (kubeflow.org/v1) of the Kubeflow training operator.

- ``Elastic`` with ``nnodes > 1`` or a range: Worker replicas with an ``elasticPolicy`` (min/max replicas, c10d
  rendezvous, ``nProcPerNode``, ``maxRestarts``); every pod runs the task, whose elastic launcher reads the
  operator's ``PET_*`` variables and joins the rendezvous; global rank 0's value is the task's (every node returns
  it). ``Elastic(nnodes=1)`` runs as a plain Job, as flytekit does.
- ``PyTorch(master, worker)``: Master and Worker replica specs (image, requests/limits, restart policy, replicas).
- ``run_policy`` becomes ``runPolicy`` (clean pod policy, TTL, active deadline, backoff limit); NCCL settings are
  env vars of every replica.

The primary pod is the master (worker 0 without one). Terminal: the latest True condition, Succeeded or Failed.
With ``pytorch_resource: TrainJob`` in the settings, the same configs become Trainer v2 TrainJobs instead.
"""

from __future__ import annotations

from typing import Any

from flyte._k8s.pods import RemoteCall
from flyte._k8s.resources import KubernetesResource, Outcome, condition_outcome, register
from flyteplugins.kubeflow.k8s import KubeflowJobResource, replica_resources, run_policy_spec

from ._config import Elastic, PyTorch
from ._nccl import nccl_environment

CONTAINER = "pytorch"


class PyTorchJobResource(KubeflowJobResource):
    api_version = "kubeflow.org/v1"
    kind = "PyTorchJob"
    plural = "pytorchjobs"

    def primary_container(self, call: RemoteCall) -> str:
        return CONTAINER

    def handles(self, config: Any) -> bool:
        return not (isinstance(config, Elastic) and config.node_range == (1, 1))  # one node: a plain Job

    def variant(self, settings: Any) -> KubernetesResource:
        if getattr(settings, "pytorch_resource", "PyTorchJob") == "TrainJob":
            return TrainJobResource()
        return self

    def _replica(self, call: RemoteCall, *, replicas: int, primary: bool, restart: str, image: str | None,
                 resources: dict[str, Any] | None) -> dict[str, Any]:
        nccl = [{"name": k, "value": v} for k, v in sorted(nccl_environment(call.task.plugin_config).items())]
        template = call.pod_template(restart_policy=restart, primary=primary, container_name=CONTAINER,
                                     extra_env=nccl, resources=resources or None)
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
            # Worker 0 is the primary pod: its log is shown; every pod carries the call's labels.
            spec["pytorchReplicaSpecs"] = {"Worker": self._replica(call, replicas=high, primary=True,
                                                                   restart="OnFailure", image=None, resources=None)}
        else:
            master, worker = config.master, config.worker
            specs = {"Master": self._replica(
                call, replicas=1, primary=True,
                restart=master.restart_policy.value if master.restart_policy else "OnFailure", image=master.image,
                resources=replica_resources(master.requests, master.limits))}
            if worker.replicas:
                specs["Worker"] = self._replica(
                    call, replicas=worker.replicas, primary=False,
                    restart=worker.restart_policy.value if worker.restart_policy else "OnFailure",
                    image=worker.image, resources=replica_resources(worker.requests, worker.limits))
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
    policy), ``numProcPerNode`` the processes per node; every node runs the task, whose launcher reads the
    ``PET_*`` variables Trainer injects. The call's labels, identity and secret volumes reach the node pods through
    a runtime patch. Terminal: the Complete or Failed condition."""

    api_version = "trainer.kubeflow.org/v1alpha1"
    kind = "TrainJob"
    plural = "trainjobs"

    def primary_container(self, call: RemoteCall) -> str:
        return "node"

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
        else:
            nodes, per_node = 1 + config.worker.replicas, 1
            resources = replica_resources(config.master.requests, config.master.limits) or container.get("resources")
        trainer: dict[str, Any] = {"image": container["image"], "command": container["command"],
                                   "args": container["args"], "env": [*container.get("env", []), *nccl],
                                   "numNodes": nodes, "numProcPerNode": per_node}
        if resources:
            trainer["resourcesPerNode"] = resources
        pod_spec = {key: pod["spec"][key] for key in ("serviceAccountName", "imagePullSecrets", "volumes")
                    if key in pod["spec"]}
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


register(Elastic, PyTorchJobResource())
register(PyTorch, PyTorchJobResource())
