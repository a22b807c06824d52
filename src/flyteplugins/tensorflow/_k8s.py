"""TensorFlow tasks on Kubernetes: a ``TFJob`` (kubeflow.org/v1) of the Kubeflow training operator.

- ``tfReplicaSpecs``: ``Chief``, ``PS``, ``Worker``, ``Evaluator``, each group with replicas (those with none are
  left out), its image (the task's unless the group names one), requests/limits (the task's unless the group gives
  its own) and restart policy (``Never`` unless it says: the SDK's retries make new attempts). Every pod runs the
  task, in the container ``tensorflow`` to which the operator adds ``TF_CONFIG``; ``FLYTE_TF_REPLICA`` (the group's
  type) tells the runtime there that it is a replica, whose function runs there.
- ``run_policy`` becomes ``runPolicy`` (clean pod policy, TTL, active deadline, backoff limit).

The primary pods are the chief's (the workers' without a chief: every worker pod carries the label, worker 0's value
is the one written). Terminal: the Succeeded or Failed condition, which the operator sets when the chief (else
worker 0) succeeds or any replica fails.
"""

from __future__ import annotations

from typing import Any

from flyte._k8s.pods import RemoteCall
from flyte._k8s.resources import register
from flyteplugins.kubeflow.k8s import KubeflowJobResource, replica_resources, run_policy_spec

from ._cluster import REPLICA_ENV
from ._config import TfJob

CONTAINER = "tensorflow"  # the operator sets TF_CONFIG on the container of this name only
_GROUPS = (("Chief", "chief"), ("PS", "ps"), ("Worker", "worker"), ("Evaluator", "evaluator"))


class TFJobResource(KubeflowJobResource):
    api_version = "kubeflow.org/v1"
    kind = "TFJob"
    plural = "tfjobs"
    # Pods and Services are named <job>-<type>-<index>, DNS labels of at most 63 characters: "-evaluator-99" is 13.
    name_limit = 50

    def primary_container(self, call: RemoteCall) -> str:
        return CONTAINER

    def build(self, call: RemoteCall) -> dict[str, Any]:
        config: TfJob = call.task.plugin_config
        primary = "Chief" if config.chief.replicas else "Worker"
        specs: dict[str, Any] = {}
        for name, field in _GROUPS:
            group = getattr(config, field)
            if not group.replicas:
                continue
            restart = group.restart_policy.value if group.restart_policy is not None else "Never"
            template = call.pod_template(restart_policy=restart, primary=name == primary, container_name=CONTAINER,
                                         extra_env=[{"name": REPLICA_ENV, "value": field}],
                                         resources=replica_resources(group.requests, group.limits) or None)
            if group.image:
                container = next(c for c in template["spec"]["containers"] if c["name"] == CONTAINER)
                container["image"] = group.image
            specs[name] = {"replicas": group.replicas, "restartPolicy": restart, "template": template}
        spec = {"runPolicy": run_policy_spec(config.run_policy, call), "tfReplicaSpecs": specs}
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": call.metadata(), "spec": spec}


register(TfJob, TFJobResource())
