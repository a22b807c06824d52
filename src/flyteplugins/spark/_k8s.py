"""Spark tasks on Kubernetes: a ``SparkApplication`` (sparkoperator.k8s.io/v1beta2) of the Kubeflow Spark operator.

``Spark`` (PySpark) is an application of type Python whose main file is the SDK's ``flyte-runtime.py`` (installed with it)
(``Spark(applications_path=...)`` names another path in the image) with our arguments: the driver runs the task,
and its ``flyte.ctx().data["spark_session"]`` is the application's session (spark-submit's). ``spark_conf`` and
``hadoop_conf`` become ``sparkConf``/``hadoopConf``; the executor count, cores and memory also go to the executor
spec; ``driver_pod``/``executor_pod`` are the pods' templates; the environment's image, env vars and secrets reach
the driver and executors. ``GenericSparkConf`` (a JVM application) is type Java with its ``mainClass`` and
``mainApplicationFile``. The driver pod is the primary pod. Terminal states: COMPLETED, FAILED, SUBMISSION_FAILED.
The Spark UI: ``kubectl port-forward <name>-driver 4040`` (the operator also makes a ``<name>-ui-svc`` Service).
"""

from __future__ import annotations

from typing import Any

from flyte._k8s.pods import RemoteCall
from flyte._k8s.resources import KubernetesResource, Outcome, register

from ._config import GenericSparkConf, Spark

DRIVER_CONTAINER = "spark-kubernetes-driver"
ENTRY_POINT = "local:///usr/local/bin/flyte-runtime.py"


def _spark_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pyspark")
    except PackageNotFoundError:
        return "3.5.0"


def _template(pod_template: Any, labels: dict[str, str]) -> dict[str, Any] | None:
    if pod_template is None:
        return None
    return {"metadata": {"labels": {**pod_template.labels, **labels}, "annotations": dict(pod_template.annotations)},
            "spec": dict(pod_template.pod_spec)}


class SparkApplicationResource(KubernetesResource):
    api_version = "sparkoperator.k8s.io/v1beta2"
    kind = "SparkApplication"
    plural = "sparkapplications"

    def primary_container(self, call: RemoteCall) -> str:
        return DRIVER_CONTAINER

    def started(self, obj: dict[str, Any]) -> bool:
        return ((obj.get("status") or {}).get("applicationState") or {}).get("state") in ("RUNNING", "SUCCEEDING",
                                                                                         "FAILING")

    def build(self, call: RemoteCall) -> dict[str, Any]:
        config = call.task.plugin_config
        conf = dict(config.spark_conf)
        pod = call.pod_template()  # our env (settings, secrets by reference) and pod settings, as a Job's pod
        container = pod["spec"]["containers"][0]
        env = container.get("env", [])
        node_labels = {k: v for k, v in call.labels.items() if k != "flyte.org/primary"}
        driver: dict[str, Any] = {
            "cores": int(conf.get("spark.driver.cores", "1")), "memory": conf.get("spark.driver.memory", "1g"),
            "labels": {**pod["metadata"]["labels"]}, "annotations": dict(pod["metadata"].get("annotations") or {}),
            "env": env,
        }
        executor: dict[str, Any] = {
            "instances": int(conf.get("spark.executor.instances", "2")),
            "cores": int(conf.get("spark.executor.cores", "1")), "memory": conf.get("spark.executor.memory", "1g"),
            "labels": node_labels, "env": [e for e in env if "value" in e or "secretKeyRef" in e.get("valueFrom", {})],
        }
        for side in (driver, executor):
            if container.get("envFrom"):
                side["envFrom"] = container["envFrom"]
            if container.get("volumeMounts"):
                side["volumeMounts"] = container["volumeMounts"]
            if pod["spec"].get("serviceAccountName"):
                side["serviceAccount"] = pod["spec"]["serviceAccountName"]
        if container.get("resources", {}).get("limits", {}).get("memory"):
            driver["memoryLimit"] = container["resources"]["limits"]["memory"]
        if isinstance(config, Spark):
            for side, template in ((driver, config.driver_pod), (executor, config.executor_pod)):
                rendered = _template(template, side["labels"])
                if rendered is not None:
                    side["template"] = rendered
        spec: dict[str, Any] = {
            "type": "Python" if isinstance(config, Spark) else "Java",
            "mode": "cluster",
            "image": call.image,
            "imagePullPolicy": "IfNotPresent",
            "sparkVersion": _spark_version(),
            "sparkConf": conf,
            "restartPolicy": {"type": "Never"},
            "timeToLiveSeconds": call.settings.ttl_seconds_after_finished,
            "driver": driver,
            "executor": executor,
        }
        if config.hadoop_conf:
            spec["hadoopConf"] = dict(config.hadoop_conf)
        if pod["spec"].get("imagePullSecrets"):
            spec["imagePullSecrets"] = [s["name"] for s in pod["spec"]["imagePullSecrets"]]
        if pod["spec"].get("volumes"):
            spec["volumes"] = pod["spec"]["volumes"]
        if isinstance(config, Spark):
            spec["pythonVersion"] = "3"
            spec["mainApplicationFile"] = config.applications_path or ENTRY_POINT
            spec["arguments"] = list(call.args)
        else:
            spec["mainClass"] = config.main_class
            spec["mainApplicationFile"] = config.applications_path
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": call.metadata(), "spec": spec}

    def outcome(self, obj: dict[str, Any]) -> Outcome | None:
        state = ((obj.get("status") or {}).get("applicationState") or {})
        name = state.get("state")
        if name == "COMPLETED":
            return Outcome(True, name)
        if name in ("FAILED", "SUBMISSION_FAILED"):
            return Outcome(False, name, state.get("errorMessage", ""))
        return None


register(Spark, SparkApplicationResource())
register(GenericSparkConf, SparkApplicationResource())
