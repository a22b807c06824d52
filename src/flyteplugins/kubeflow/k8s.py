"""What every Kubeflow job's resource shares: ``runPolicy``, a replica's container resources, the status conditions
(Created, Running, Restarting, Succeeded, Failed) that say when it started and how it ended, and picking node 0
among pods that share one template."""

from __future__ import annotations

from typing import Any

from flyte._k8s.resources import KubernetesResource, Outcome, condition_outcome


class KubeflowJobResource(KubernetesResource):
    """A Kubeflow job kind (PyTorchJob, MPIJob, TFJob): started once its Running condition is True, ended by its
    Succeeded or Failed condition."""

    def started(self, obj: dict[str, Any]) -> bool:
        return any(c.get("type") == "Running" and c.get("status") == "True"
                   for c in (obj.get("status") or {}).get("conditions") or [])

    def outcome(self, obj: dict[str, Any]) -> Outcome | None:
        return condition_outcome(obj, "Succeeded", "Failed")


def replica_resources(requests: Any, limits: Any) -> dict[str, Any]:
    """A container's ``resources`` from a replica's ``requests``/``limits`` (``flyte.Resources`` or v1 maps)."""
    out: dict[str, Any] = {}
    for side, value in (("requests", requests), ("limits", limits)):
        if isinstance(value, dict):
            out[side] = {("nvidia.com/gpu" if k == "gpu" else k): str(v) for k, v in value.items()}
        elif value is not None:
            out[side] = value.requests() if side == "requests" else value.limits()
    return out


def run_policy_spec(policy: Any, call: Any) -> dict[str, Any]:
    """``spec.runPolicy``: the settings' TTL unless the policy names one."""
    out: dict[str, Any] = {"ttlSecondsAfterFinished": call.settings.ttl_seconds_after_finished}
    if policy is None:
        return out
    if policy.clean_pod_policy is not None:
        out["cleanPodPolicy"] = policy.clean_pod_policy.value
    if policy.ttl_seconds_after_finished is not None:
        out["ttlSecondsAfterFinished"] = policy.ttl_seconds_after_finished
    if policy.active_deadline_seconds is not None:
        out["activeDeadlineSeconds"] = policy.active_deadline_seconds
    if policy.backoff_limit is not None:
        out["backoffLimit"] = policy.backoff_limit
    return out


def pod_of_index(pods: list[dict[str, Any]], labels: dict[str, str]) -> dict[str, Any] | None:
    """Node 0 among pods made from one template (every one labelled primary): the newest pod whose ``labels`` all
    have these values (an operator's replica or completion index). None while the operator has not made it yet;
    the newest pod when none carries the labels at all (an operator that does not set them)."""
    indexed = [pod for pod in pods if any(key in (pod["metadata"].get("labels") or {}) for key in labels)]
    if not indexed:
        candidates = pods
    else:
        candidates = [pod for pod in indexed
                      if all((pod["metadata"].get("labels") or {}).get(key, value) == value
                             for key, value in labels.items())]
    return max(candidates, key=lambda pod: pod["metadata"].get("creationTimestamp", "")) if candidates else None
