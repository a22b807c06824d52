"""Ray tasks on Kubernetes: a ``RayJob`` (ray.io/v1) of KubeRay.

The job's cluster comes from the head and worker groups (replicas, min/max, ``ray_start_params``, pod templates,
requests/limits; ``enable_autoscaling`` with ``autoscaler_options`` turns on the in-tree autoscaler); the
entrypoint runs the task (``python -m flyte.runtime``), which attaches to the job's cluster (``RAY_ADDRESS``); the
user's ``runtime_env`` plus the code bundle on the object store as ``working_dir`` is the job's ``runtimeEnvYAML``.

In K8sJobMode the submitter pod only submits the job: KubeRay's job supervisor starts the entrypoint (the driver) on
the head, with the head container's environment, and Ray's workers fetch the ``working_dir`` from the object store
themselves. So the head and worker pods carry the call's identity as the submitter does: service account, image
pull secrets, the ``storage_env_secret`` (``envFrom``), the task's secrets (env and mounted volumes), and the
tier's settings and store endpoint in their environment.

``shutdown_after_job_finishes=True`` shuts the cluster down when the job ends, and the RayJob goes
``ttlSecondsAfterFinished`` later (KubeRay accepts a TTL only with shutdown); with False (the default, as in
flytekit) the cluster lives until the RayJob is deleted, which the controller does after the call whatever its end.
``address=`` still attaches to an existing cluster instead (a Job runs the task). The submitter's log is the driver
log; its pod is the primary pod. Terminal: ``jobDeploymentStatus`` Complete / Failed / ValidationFailed. Names are at
most 47 characters (KubeRay derives longer ones from them).
"""

from __future__ import annotations

import copy
import shlex
from typing import Any

from flyte._k8s.pods import RemoteCall, resource_requirements, share_call_identity
from flyte._k8s.resources import KubernetesResource, Outcome, register

from ._config import RayJobConfig

SUBMITTER_CONTAINER = "ray-job-submitter"


def _ray_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ray")
    except PackageNotFoundError:
        return "2.40.0"


def _node(call: RemoteCall, name: str, node: Any, labels: dict[str, str], call_pod: dict[str, Any]) -> dict[str, Any]:
    """A head or worker group's pod template: the node's own template, requests and limits, with the call's
    identity taken from the call's pod (``call_pod``, the submitter's): the driver runs on the head, and every
    node's runtime-env agent reads the ``working_dir`` from the store."""
    template = node.pod_template if node is not None and not isinstance(node.pod_template, str) else None
    spec: dict[str, Any] = copy.deepcopy(template.pod_spec) if template is not None else {}
    containers = spec.setdefault("containers", [])
    container = next((c for c in containers if c.get("name") == name), None)
    if container is None:
        container = {"name": name}
        containers.insert(0, container)
    container.setdefault("image", call.image)
    share_call_identity(call_pod, spec, container)
    resources = resource_requirements(node.requests, node.limits) if node is not None else {}
    if resources:
        container["resources"] = resources
    metadata: dict[str, Any] = {"labels": {**(template.labels if template else {}), **labels}}
    if template is not None and template.annotations:
        metadata["annotations"] = dict(template.annotations)
    return {"metadata": metadata, "spec": spec}


class RayJobResource(KubernetesResource):
    api_version = "ray.io/v1"
    kind = "RayJob"
    plural = "rayjobs"
    name_limit = 47

    def primary_container(self, call: RemoteCall) -> str:
        return SUBMITTER_CONTAINER

    def handles(self, config: Any) -> bool:
        return not config.address  # attached to an existing cluster: a plain Job runs the task

    def started(self, obj: dict[str, Any]) -> bool:
        return (obj.get("status") or {}).get("jobDeploymentStatus") == "Running"

    def build(self, call: RemoteCall) -> dict[str, Any]:
        config: RayJobConfig = call.task.plugin_config
        pod = call.pod_template(container_name=SUBMITTER_CONTAINER)
        node_labels = {k: v for k, v in call.labels.items() if k != "flyte.org/primary"}
        head = config.head_node_config
        head_group = {"rayStartParams": dict(head.ray_start_params or {}) if head else {},
                      "template": _node(call, "ray-head", head, node_labels, pod)}
        workers = [{
            "groupName": group.group_name, "replicas": group.replicas,
            "minReplicas": group.min_replicas if group.min_replicas is not None else group.replicas,
            "maxReplicas": group.max_replicas if group.max_replicas is not None else group.replicas,
            "rayStartParams": dict(group.ray_start_params or {}),
            "template": _node(call, "ray-worker", group, node_labels, pod),
        } for group in config.worker_node_config]
        cluster: dict[str, Any] = {"rayVersion": _ray_version(), "headGroupSpec": head_group}
        if workers:
            cluster["workerGroupSpecs"] = workers
        if config.enable_autoscaling:
            cluster["enableInTreeAutoscaling"] = True
            options = config.autoscaler_options
            if options is not None:
                rendered: dict[str, Any] = {}
                if options.upscaling_mode:
                    rendered["upscalingMode"] = options.upscaling_mode
                if options.idle_timeout_seconds is not None:
                    rendered["idleTimeoutSeconds"] = options.idle_timeout_seconds
                if options.image:
                    rendered["image"] = options.image
                if options.env:
                    rendered["env"] = [{"name": k, "value": v} for k, v in options.env.items()]
                if options.resources is not None:
                    rendered["resources"] = resource_requirements(options.resources, options.resources)
                cluster["autoscalerOptions"] = rendered
        spec: dict[str, Any] = {
            "entrypoint": shlex.join(["python", *call.command[1:], *call.args]),
            "submissionMode": "K8sJobMode",
            "shutdownAfterJobFinishes": config.shutdown_after_job_finishes,
            "rayClusterSpec": cluster,
            "submitterPodTemplate": pod,
        }
        if config.shutdown_after_job_finishes:
            ttl = config.ttl_seconds_after_finished
            spec["ttlSecondsAfterFinished"] = ttl if ttl is not None else call.settings.ttl_seconds_after_finished
        # (Without shutdown KubeRay rejects any TTL; the controller deletes the RayJob, and so its cluster, after
        # the call, and `flyte gc` finds one whose controller died.)
        runtime_env = dict(config.runtime_env or {})
        bundle = call.args[call.args.index("--bundle") + 1] if "--bundle" in call.args else None
        if bundle and "working_dir" not in runtime_env:
            runtime_env["working_dir"] = bundle  # the job's workers import the user's code from the object store
        if runtime_env:
            import yaml

            spec["runtimeEnvYAML"] = yaml.safe_dump(runtime_env, sort_keys=True)
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": call.metadata(), "spec": spec}

    def outcome(self, obj: dict[str, Any]) -> Outcome | None:
        status = obj.get("status") or {}
        deployment = status.get("jobDeploymentStatus")
        if deployment == "Complete":
            succeeded = status.get("jobStatus") == "SUCCEEDED"
            return Outcome(succeeded, status.get("jobStatus", deployment), status.get("message", ""))
        if deployment in ("Failed", "ValidationFailed"):
            reason = status.get("reason") or deployment  # ValidationFailed, AppFailed, PreRunningDeadlineExceeded...
            return Outcome(False, reason, f"{reason}: {status.get('message', '')}")
        return None


register(RayJobConfig, RayJobResource())
