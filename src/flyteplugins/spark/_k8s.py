"""Spark tasks on Kubernetes: a ``SparkApplication`` (sparkoperator.k8s.io/v1beta2) of the Kubeflow Spark operator.

``Spark`` (PySpark) is an application of type Python whose main file is the SDK's ``flyte-runtime.py`` (installed with it)
(``Spark(applications_path=...)`` names another path in the image) with our arguments: the driver runs the task,
and its ``flyte.ctx().data["spark_session"]`` is the application's session (spark-submit's). ``spark_conf`` and
``hadoop_conf`` become ``sparkConf``/``hadoopConf``; the executor count, cores and memory also go to the executor
spec; ``driver_pod``/``executor_pod`` are the pods' templates; the environment's image, env vars and secrets reach
the driver and executors. The driver pod is the primary pod. Terminal states: COMPLETED, FAILED, SUBMISSION_FAILED
(a FAILED that the operator reached by giving up on a failed submission is reported as SUBMISSION_FAILED too).
The Spark UI: ``kubectl port-forward <name>-driver 4040`` (the operator also makes a ``<name>-ui-svc`` Service).

The environment's ``resources`` size the driver and every executor, as Flyte's Spark plugin gives both pods the
task's container: a cpu request sets ``coreRequest`` and ``cores`` (rounded up), a cpu limit ``coreLimit``, a GPU
``gpu: {name: nvidia.com/gpu, quantity}``. Memory is the pod's, as for any task: Spark sizes a pod as JVM heap plus
overhead, so a request of M gives ``memoryOverhead`` = max(384 MiB, 10% of M) and ``memory`` (the heap) = M minus
that, and a limit gives ``memoryLimit``. A Spark setting of the same thing (``spark.driver.cores``,
``spark.kubernetes.executor.request.cores``, ``spark.executor.memory``, ``spark.driver.resource.gpu.amount``...)
wins, and so does a ``driver_pod``/``executor_pod`` template whose Spark container sets its own resources.

``GenericSparkConf`` (a JVM application) is type Java with its ``mainClass`` and ``mainApplicationFile``: on
Kubernetes the JVM application *is* the task. Locally, ``spark-submit`` runs the application and then the
function's body; here no Python runs in the driver, so the body does not run and the call returns None when the
application COMPLETES (its end is the SparkApplication's status, not an outputs document). A GenericSparkConf task
that declares an output is refused before anything is submitted; the application writes its results to storage.
"""

from __future__ import annotations

import math
import re
from typing import Any

from flyte._k8s.pods import RemoteCall
from flyte._k8s.resources import KubernetesResource, Outcome, register
from flyte.errors import NonRecoverableError
from flyte.extend import quantity_to_float

from ._config import GenericSparkConf, Spark

DRIVER_CONTAINER = "spark-kubernetes-driver"
EXECUTOR_CONTAINER = "spark-kubernetes-executor"
ENTRY_POINT = "local:///usr/local/bin/flyte-runtime.py"
GPU = "nvidia.com/gpu"
MIN_OVERHEAD_MIB = 384  # Spark's floor for a pod's memory beyond the JVM heap
OVERHEAD_FACTOR = 0.10  # Spark's default share of the heap for that overhead
MIN_HEAP_MIB = 450  # Spark refuses a driver or executor JVM with less (reserved memory x 1.5)
# The operator's error message of a failed spark-submit; after the last retry it keeps it in the FAILED state.
SUBMISSION_ERROR = "failed to run spark-submit"


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


def _sets_own_resources(template: Any, container_name: str) -> bool:
    """Whether a driver/executor template gives its Spark container (by the operator's name, else its first) resources."""
    if template is None:
        return False
    containers = template.pod_spec.get("containers") or []
    container = next((c for c in containers if c.get("name") == container_name), containers[0] if containers else {})
    return bool(container.get("resources"))


def _mib(quantity: str) -> int:
    return math.ceil(quantity_to_float(quantity) / 2**20)


def _spark_mib(value: str) -> float:
    """A Spark memory setting (``"3000M"``, ``"2g"``, ``"512"``: MiB when it has no unit) in MiB."""
    match = re.match(r"^(\d+)([kmgtp]?)(b?)$", value.strip().lower())
    if match is None:
        raise ValueError(f"{value!r} is not a Spark memory size")
    number, unit, in_bytes = int(match.group(1)), match.group(2), match.group(3)
    if not unit:
        return number / 2**20 if in_bytes else float(number)
    return number * 1024.0 ** ("kmgtp".index(unit) - 1)


def _sizing(side: str, conf: dict[str, str], resources: dict[str, Any]) -> dict[str, Any]:
    """The fields of the driver or executor spec (``side``) that the environment's resources set, but those that a
    Spark setting of the same thing already sets (sparkConf reaches spark-submit as it is)."""
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    out: dict[str, Any] = {}
    if requests.get("cpu") is not None:
        if f"spark.{side}.cores" not in conf:
            out["cores"] = max(1, math.ceil(quantity_to_float(requests["cpu"])))
        if f"spark.kubernetes.{side}.request.cores" not in conf:
            out["coreRequest"] = str(requests["cpu"])
    if limits.get("cpu") is not None and f"spark.kubernetes.{side}.limit.cores" not in conf:
        out["coreLimit"] = str(limits["cpu"])
    overhead_key, heap_key = f"spark.{side}.memoryOverhead", f"spark.{side}.memory"
    overhead = _spark_mib(conf[overhead_key]) if overhead_key in conf else None
    heap = _spark_mib(conf[heap_key]) if heap_key in conf else None
    if requests.get("memory") is not None and heap is None:
        total = _mib(requests["memory"])
        if overhead is None:
            overhead = max(MIN_OVERHEAD_MIB, math.ceil(total * OVERHEAD_FACTOR))
            out["memoryOverhead"] = f"{overhead}m"
        heap = float(total - overhead)
        if heap < MIN_HEAP_MIB:
            raise NonRecoverableError(
                f"TaskEnvironment(resources=...): a memory request of {requests['memory']} leaves the Spark {side} "
                f"a JVM heap of {int(heap)} MiB after {int(overhead)} MiB of overhead, and Spark needs at least "
                f"{MIN_HEAP_MIB} MiB; request at least {math.ceil(MIN_HEAP_MIB + overhead)}Mi, or set "
                f"spark_conf[{heap_key!r}] (the heap) yourself", "InvalidSparkResources")
        out["memory"] = f"{int(heap)}m"
    if limits.get("memory") is not None:
        if heap is not None and _mib(limits["memory"]) < heap + max(overhead or 0, MIN_OVERHEAD_MIB):
            raise NonRecoverableError(
                f"TaskEnvironment(resources=...): the memory limit {limits['memory']} is below what the Spark {side} "
                f"pod asks for: spark_conf[{heap_key!r}]={conf.get(heap_key, f'{int(heap)}m')} of heap plus at least "
                f"{int(max(overhead or 0, MIN_OVERHEAD_MIB))} MiB of overhead; raise the limit or lower the heap",
                "InvalidSparkResources")
        out["memoryLimit"] = str(limits["memory"])
    gpus = limits.get(GPU) or requests.get(GPU)
    if gpus and f"spark.{side}.resource.gpu.amount" not in conf:
        out["gpu"] = {"name": GPU, "quantity": int(quantity_to_float(gpus))}
    return out


def _refuse_outputs(call: RemoteCall) -> None:
    """A JVM application cannot produce the function's output: refuse such a task before anything is submitted."""
    output = call.task.interface.output
    if output is None or output is type(None) or output is Any:
        return
    name = getattr(output, "__name__", None) or repr(output)
    raise NonRecoverableError(
        f"{call.task.name}: a GenericSparkConf task declares an output ({name}), but on Kubernetes its JVM application "
        "is the whole task (a SparkApplication of type Java): the function's body does not run there, so nothing "
        "can produce the output. Declare `-> None` and have the application write its results to storage, or use "
        "Spark(...) with a PySpark body that returns them", "GenericSparkOutput")


class SparkApplicationResource(KubernetesResource):
    api_version = "sparkoperator.k8s.io/v1beta2"
    kind = "SparkApplication"
    plural = "sparkapplications"

    def primary_container(self, call: RemoteCall) -> str:
        return DRIVER_CONTAINER

    def writes_outputs(self, call: RemoteCall) -> bool:
        # A JVM application's driver runs no flyte.runtime: its end is the application's state.
        return not isinstance(call.task.plugin_config, GenericSparkConf)

    def started(self, obj: dict[str, Any]) -> bool:
        return ((obj.get("status") or {}).get("applicationState") or {}).get("state") in ("RUNNING", "SUCCEEDING",
                                                                                         "FAILING")

    def build(self, call: RemoteCall) -> dict[str, Any]:
        config = call.task.plugin_config
        if isinstance(config, GenericSparkConf):
            _refuse_outputs(call)
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
        templates = (config.driver_pod, config.executor_pod) if isinstance(config, Spark) else (None, None)
        resources = call.resources()
        for name, side, template, spark_container in (("driver", driver, templates[0], DRIVER_CONTAINER),
                                                     ("executor", executor, templates[1], EXECUTOR_CONTAINER)):
            if not _sets_own_resources(template, spark_container):
                side.update(_sizing(name, conf, resources))
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
            message = state.get("errorMessage", "")
            if message.startswith(SUBMISSION_ERROR):
                name = "SUBMISSION_FAILED"
            return Outcome(False, name, f"{name}: {message}" if message else name)
        return None


register(Spark, SparkApplicationResource())
register(GenericSparkConf, SparkApplicationResource())
