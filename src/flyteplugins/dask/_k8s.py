"""Dask tasks on Kubernetes: a ``DaskJob`` (kubernetes.dask.org/v1) of the dask-kubernetes operator.

The job runner pod runs the task (``flyte.runtime``) with ``DASK_SCHEDULER_ADDRESS`` set by the operator, so the
task attaches to the job's own cluster; the scheduler and worker pods are sized by ``Scheduler`` and
``WorkerGroup`` (image, resources, count). The code bundle reaches the workers as in attach mode (the runner ships
it to them); the workers, where the task's functions run too, carry the runner's identity (env and secrets, the
storage Secret, secret volumes, service account, pull secrets). The operator leaves finished DaskJobs in place
(it has no TTL): the controller deletes them. Terminal ``status.jobStatus``: Successful, Failed.
"""

from __future__ import annotations

from typing import Any

from flyte._k8s.pods import RemoteCall, resource_requirements, share_call_identity
from flyte._k8s.resources import KubernetesResource, Outcome, register

from ._config import Dask

SCHEDULER_PORT = 8786
DASHBOARD_PORT = 8787


class DaskJobResource(KubernetesResource):
    api_version = "kubernetes.dask.org/v1"
    kind = "DaskJob"
    plural = "daskjobs"

    def primary_container(self, call: RemoteCall) -> str:
        return "job"

    def handles(self, config: Any) -> bool:
        return not config.scheduler_address  # attached to an existing scheduler: a plain Job runs the task

    def started(self, obj: dict[str, Any]) -> bool:
        return (obj.get("status") or {}).get("jobStatus") == "Running"

    def build(self, call: RemoteCall) -> dict[str, Any]:
        config: Dask = call.task.plugin_config
        runner = call.pod_template(container_name="job")
        scheduler_env = [e for e in runner["spec"]["containers"][0].get("env", []) if "value" in e]  # no secrets
        node_labels = {k: v for k, v in call.labels.items() if not k.startswith("flyte.org/primary")}
        scheduler = {
            "containers": [{
                "name": "scheduler", "image": config.scheduler.image or call.image,
                "args": ["dask", "scheduler", "--port", str(SCHEDULER_PORT), "--dashboard-address",
                         f":{DASHBOARD_PORT}"],
                "ports": [{"name": "tcp-comm", "containerPort": SCHEDULER_PORT, "protocol": "TCP"},
                          {"name": "http-dashboard", "containerPort": DASHBOARD_PORT, "protocol": "TCP"}],
                "readinessProbe": {"httpGet": {"port": "http-dashboard", "path": "/health"},
                                   "initialDelaySeconds": 0, "periodSeconds": 1, "timeoutSeconds": 300},
                "env": scheduler_env,
                **({"resources": resource_requirements(config.scheduler.effective_resources())}
                   if config.scheduler.effective_resources() is not None else {}),
            }],
        }
        worker_container = {
            "name": "worker", "image": config.workers.image or call.image,
            "args": ["dask", "worker", "--name", "$(DASK_WORKER_NAME)", "--dashboard", "--dashboard-address", "8788"],
            "ports": [{"name": "http-dashboard", "containerPort": 8788, "protocol": "TCP"}],
            **({"resources": resource_requirements(config.workers.effective_resources())}
               if config.workers.effective_resources() is not None else {}),
        }
        worker: dict[str, Any] = {"containers": [worker_container]}
        # The task's functions run on the workers too: they get its secrets, the storage Secret and the settings.
        share_call_identity(runner, worker, worker_container)
        for key in ("serviceAccountName", "imagePullSecrets"):
            if key in runner["spec"]:
                scheduler[key] = runner["spec"][key]
        spec = {
            "job": {"metadata": runner["metadata"], "spec": runner["spec"]},
            "cluster": {"spec": {
                "worker": {"replicas": config.workers.number_of_workers, "metadata": {"labels": node_labels},
                           "spec": worker},
                "scheduler": {"metadata": {"labels": node_labels}, "spec": scheduler, "service": {
                    "type": "ClusterIP",
                    "selector": {"dask.org/cluster-name": call.name, "dask.org/component": "scheduler"},
                    "ports": [{"name": "tcp-comm", "protocol": "TCP", "port": SCHEDULER_PORT,
                               "targetPort": "tcp-comm"},
                              {"name": "http-dashboard", "protocol": "TCP", "port": DASHBOARD_PORT,
                               "targetPort": "http-dashboard"}]}},
            }},
        }
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": call.metadata(), "spec": spec}

    def outcome(self, obj: dict[str, Any]) -> Outcome | None:
        state = (obj.get("status") or {}).get("jobStatus")
        if state == "Successful":
            return Outcome(True, state)
        if state == "Failed":
            return Outcome(False, state, "the DaskJob's runner failed")
        return None


register(Dask, DaskJobResource())
