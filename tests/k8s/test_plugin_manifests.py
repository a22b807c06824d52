"""Golden manifests of the plugins' custom resources for a matrix of configs, each validated against its operator's
CRD (``../shared/k8s-crds``: the openAPIV3Schema with unknown fields rejected, through the Kubernetes API server
double's validator) and against the operators' own rules that the schemas do not hold; and ``flyte run --dry-run``
printing them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _k8s_testkit import CRDS

import flyte
import flyte.kubernetes

pytestmark = [pytest.mark.k8s, pytest.mark.skipif(not CRDS.is_dir(), reason="needs ../shared/k8s-crds")]


@pytest.fixture(scope="module")
def validators():
    from kube_double.crds import load_crds

    return {(rt.group, rt.kind): rt.validators for rt in load_crds(str(CRDS))}


def _check(validators, manifest: dict) -> None:
    group, version = manifest["apiVersion"].split("/")
    validator = validators[(group, manifest["kind"])][version]
    assert validator.unknown(manifest) == [], f"fields the CRD does not have: {validator.unknown(manifest)}"
    # (The validator checks the body without metadata, which the API server validates on its own.)
    assert [e for e in validator.errors(manifest) if "'metadata'" not in e[1]] == []
    name = manifest["metadata"]["name"]
    assert len(name) <= 63 and name[0].isalpha()


def _manifest(plugin_config, *, run_name: str = "golden") -> dict:
    env = flyte.TaskEnvironment(name="golden", plugin_config=plugin_config, image="ghcr.io/acme/app:2",
                                env_vars={"MODE": "fast"}, secrets=[flyte.Secret(key="token", group="creds")])

    async def work(x: int) -> int:
        return x

    task = env.task(work)
    [manifest] = flyte.kubernetes.dry_run(task, 1, run_name=run_name)
    return manifest


def _spark_configs():
    from flyteplugins.spark.task import GenericSparkConf, Spark

    template = flyte.PodTemplate(pod_spec={"containers": [{"name": "spark-kubernetes-driver"}],
                                           "tolerations": [{"key": "spark", "operator": "Exists"}]},
                                 labels={"team": "data"})
    return [
        Spark(spark_conf={"spark.executor.instances": "3", "spark.executor.memory": "2g", "spark.driver.cores": "2",
                          "spark.executor.cores": "3"},
              hadoop_conf={"fs.s3a.fast.upload": "true"}, driver_pod=template, executor_pod=template),
        Spark(),
        GenericSparkConf(main_class="org.apache.spark.examples.SparkPi",
                         applications_path="local:///opt/spark/examples/jars/spark-examples.jar"),
    ]


def _spark_manifest(plugin_config, *, resources=None, output: bool = True) -> dict:
    """A Spark task's manifest; ``output=False``: the task returns None (a GenericSparkConf task must)."""
    env = flyte.TaskEnvironment(name="golden", plugin_config=plugin_config, image="ghcr.io/acme/app:2",
                                resources=resources, secrets=[flyte.Secret(key="token", group="creds")])

    async def work(x: int) -> int:
        return x

    async def job(x: int) -> None:
        return None

    [manifest] = flyte.kubernetes.dry_run(env.task(work if output else job), 1, run_name="golden")
    return manifest


@pytest.mark.parametrize("index", range(3))
def test_spark_application(validators, index):
    config = _spark_configs()[index]
    manifest = _manifest(config) if index != 2 else _spark_manifest(config, output=False)
    assert manifest["kind"] == "SparkApplication"
    _check(validators, manifest)
    spec = manifest["spec"]
    if index == 0:
        assert spec["type"] == "Python" and spec["mainApplicationFile"] == "local:///usr/local/bin/flyte-runtime.py"
        assert spec["arguments"][:1] == ["--task"] and spec["hadoopConf"] == {"fs.s3a.fast.upload": "true"}
        assert spec["executor"]["instances"] == 3 and spec["executor"]["memory"] == "2g"
        assert spec["driver"]["cores"] == 2 and spec["driver"]["labels"]["flyte.org/primary"] == "true"
        assert spec["driver"]["template"]["spec"]["tolerations"] == [{"key": "spark", "operator": "Exists"}]
        env = {e["name"]: e for e in spec["driver"]["env"]}
        assert env["CREDS_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "creds", "key": "token"}
        assert spec["timeToLiveSeconds"] == 3600 and spec["image"] == "ghcr.io/acme/app:2"
        executor = spec["executor"]
        assert executor["cores"] == 3
        assert executor["template"]["spec"]["tolerations"] == [{"key": "spark", "operator": "Exists"}]
        assert executor["template"]["metadata"]["labels"]["team"] == "data"
        assert "flyte.org/primary" not in executor["template"]["metadata"]["labels"]  # the driver is the primary
        executor_env = {e["name"]: e for e in executor["env"]}
        assert executor_env["CREDS_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "creds", "key": "token"}
        assert executor_env["MODE"]["value"] == "fast"
    if index == 2:
        assert spec["type"] == "Java" and spec["mainClass"] == "org.apache.spark.examples.SparkPi"
        assert spec["mainApplicationFile"] == "local:///opt/spark/examples/jars/spark-examples.jar"
        assert "arguments" not in spec and "pythonVersion" not in spec  # the JVM application runs, not flyte.runtime


_DRIVER_ONLY_TEMPLATE = flyte.PodTemplate(pod_spec={"containers": [
    {"name": "spark-kubernetes-driver", "resources": {"requests": {"cpu": "7"}}}]})


@pytest.mark.parametrize("resources, conf, driver, executor, absent", [
    # request = limit: the pod's memory (heap + overhead) is the request; overhead max(384 MiB, 10%)
    (flyte.Resources(cpu=2, memory="4Gi"), {},
     {"cores": 2, "coreRequest": "2", "coreLimit": "2", "memory": "3686m", "memoryOverhead": "410m",
      "memoryLimit": "4Gi"}, None, {"driver": ["gpu"], "executor": ["gpu"]}),
    # a range, a fraction of a cpu, a GPU on every pod
    (flyte.Resources(cpu=("500m", 3), memory=("1Gi", "2Gi"), gpu=1), {},
     {"cores": 1, "coreRequest": "500m", "coreLimit": "3", "memory": "640m", "memoryOverhead": "384m",
      "memoryLimit": "2Gi", "gpu": {"name": "nvidia.com/gpu", "quantity": 1}}, None, {}),
    # spark_conf wins over the resource it would set, side by side
    (flyte.Resources(cpu=4, memory="8Gi", gpu=1),
     {"spark.driver.cores": "1", "spark.driver.memory": "2g", "spark.kubernetes.executor.limit.cores": "6",
      "spark.executor.resource.gpu.amount": "2", "spark.executor.memoryOverhead": "1g"},
     {"cores": 1, "coreRequest": "4", "coreLimit": "4", "memory": "2g", "memoryLimit": "8Gi",
      "gpu": {"name": "nvidia.com/gpu", "quantity": 1}},
     {"cores": 4, "coreRequest": "4", "memory": "7168m", "memoryLimit": "8Gi"},
     {"driver": ["memoryOverhead"], "executor": ["coreLimit", "gpu", "memoryOverhead"]}),
])
def test_spark_environment_resources_size_driver_and_executors(validators, resources, conf, driver, executor,
                                                              absent):
    from flyteplugins.spark.task import Spark

    spec = _spark_manifest(Spark(spark_conf=conf), resources=resources)["spec"]
    _check(validators, _spark_manifest(Spark(spark_conf=conf), resources=resources))
    for side, wanted in (("driver", driver), ("executor", executor or driver)):
        assert {key: spec[side].get(key) for key in wanted} == wanted, side
        assert [key for key in absent.get(side, []) if key in spec[side]] == [], side
    assert spec["sparkConf"] == conf  # passed as written: spark-submit sees the user's settings


def test_spark_template_resources_and_impossible_sizes():
    from flyte.errors import NonRecoverableError
    from flyteplugins.spark.task import Spark

    # A driver template that sizes its Spark container itself keeps its size; the executors follow the environment.
    spec = _spark_manifest(Spark(driver_pod=_DRIVER_ONLY_TEMPLATE), resources=flyte.Resources(cpu=2))["spec"]
    assert "coreRequest" not in spec["driver"] and spec["executor"]["coreRequest"] == "2"
    with pytest.raises(NonRecoverableError, match=r"memory request of 600Mi .* at least 834Mi"):
        _spark_manifest(Spark(), resources=flyte.Resources(memory="600Mi"))
    with pytest.raises(NonRecoverableError, match=r"memory limit 2Gi .*spark.driver.memory'\]=2g"):
        _spark_manifest(Spark(spark_conf={"spark.driver.memory": "2g"}), resources=flyte.Resources(memory="2Gi"))


def test_generic_spark_task_with_an_output_is_refused_before_submission():
    from flyte.errors import NonRecoverableError
    from flyteplugins.spark.task import GenericSparkConf

    config = GenericSparkConf(main_class="com.example.App", applications_path="local:///opt/app.jar")
    with pytest.raises(NonRecoverableError, match=r"declares an output \(int\).*JVM application is the whole task"):
        _spark_manifest(config)
    assert _spark_manifest(config, output=False)["spec"]["type"] == "Java"


@pytest.mark.parametrize("status, outcome", [
    ({"applicationState": {"state": "RUNNING"}}, None),
    ({"applicationState": {"state": "COMPLETED"}}, (True, "COMPLETED")),
    ({"applicationState": {"state": "FAILED", "errorMessage": "driver container failed with ExitCode: 1"}},
     (False, "FAILED")),
    ({"applicationState": {"state": "SUBMISSION_FAILED", "errorMessage": "failed to run spark-submit: quota"}},
     (False, "SUBMISSION_FAILED")),
    # the operator gives up on a failed submission (no retries left) with FAILED, keeping spark-submit's error
    ({"applicationState": {"state": "FAILED", "errorMessage": "failed to run spark-submit: quota"}},
     (False, "SUBMISSION_FAILED")),
])
def test_spark_application_outcome(status, outcome):
    from flyteplugins.spark._k8s import SparkApplicationResource

    got = SparkApplicationResource().outcome({"status": status})
    assert (got.succeeded, got.reason) == outcome if outcome else got is None
    if got is not None and not got.succeeded:
        assert got.message.startswith(got.reason) and status["applicationState"]["errorMessage"] in got.message


def test_ray_job(validators):
    from flyteplugins.ray.task import AutoscalerOptionsConfig, HeadNodeConfig, RayJobConfig, WorkerNodeConfig

    config = RayJobConfig(
        worker_node_config=[WorkerNodeConfig(group_name="cpu", replicas=2, min_replicas=1, max_replicas=4,
                                             ray_start_params={"num-cpus": "1"},
                                             requests=flyte.Resources(cpu="1", memory="1Gi"),
                                             limits=flyte.Resources(cpu="2", memory="2Gi"),
                                             pod_template=flyte.PodTemplate(
                                                 pod_spec={"containers": [{"name": "ray-worker"}],
                                                           "tolerations": [{"key": "ray", "operator": "Exists"}]},
                                                 labels={"team": "ml"}))],
        head_node_config=HeadNodeConfig(ray_start_params={"dashboard-host": "0.0.0.0"},
                                        requests=flyte.Resources(cpu="1", memory="2Gi")),
        enable_autoscaling=True, autoscaler_options=AutoscalerOptionsConfig(upscaling_mode="Default",
                                                                            idle_timeout_seconds=60),
        runtime_env={"env_vars": {"A": "1"}, "pip": ["numpy"]}, shutdown_after_job_finishes=True,
        ttl_seconds_after_finished=120)
    manifest = _manifest(config, run_name="r" + "x" * 80)
    assert manifest["kind"] == "RayJob"
    _check(validators, manifest)
    spec = manifest["spec"]
    assert len(manifest["metadata"]["name"]) <= 47  # KubeRay derives longer names from it
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] == 120  # TTL needs shutdown
    assert spec["entrypoint"].startswith("python -m flyte.runtime --task ")
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert runtime_env["env_vars"] == {"A": "1"} and runtime_env["pip"] == ["numpy"]
    assert runtime_env["working_dir"].startswith("s3://my-bucket/flyte/bundles/")  # the code, from the store
    cluster = spec["rayClusterSpec"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["autoscalerOptions"] == {"upscalingMode": "Default", "idleTimeoutSeconds": 60}
    [group] = cluster["workerGroupSpecs"]
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (2, 1, 4)
    assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}
    submitter = spec["submitterPodTemplate"]
    assert submitter["metadata"]["labels"]["flyte.org/primary"] == "true"
    assert spec["submissionMode"] == "K8sJobMode"
    assert cluster["headGroupSpec"]["rayStartParams"] == {"dashboard-host": "0.0.0.0"}
    assert group["rayStartParams"] == {"num-cpus": "1"}
    worker = group["template"]
    [worker_container] = worker["spec"]["containers"]
    assert worker_container["name"] == "ray-worker" and worker_container["image"] == "ghcr.io/acme/app:2"
    assert worker_container["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"},
                                             "limits": {"cpu": "2", "memory": "2Gi"}}
    assert worker["spec"]["tolerations"] == [{"key": "ray", "operator": "Exists"}]
    assert worker["metadata"]["labels"]["team"] == "ml" and "flyte.org/primary" not in worker["metadata"]["labels"]


def test_ray_job_nodes_carry_the_calls_identity(validators):
    """KubeRay's job supervisor starts the driver on the head (with the head container's environment), and every
    node's runtime-env agent fetches the working_dir from the store: head and workers get what the submitter gets."""
    from flyteplugins.ray.task import RayJobConfig, WorkerNodeConfig

    manifest = _identity_manifest(validators, RayJobConfig(worker_node_config=[WorkerNodeConfig(group_name="w")]))
    spec = manifest["spec"]
    submitter = spec["submitterPodTemplate"]["spec"]
    cluster = spec["rayClusterSpec"]
    for node in (cluster["headGroupSpec"]["template"], cluster["workerGroupSpecs"][0]["template"]):
        _assert_call_identity(node["spec"], submitter)
        assert "flyte.org/primary" not in node["metadata"]["labels"]


def test_dask_job_workers_carry_the_calls_identity(validators):
    """The task's functions run on the Dask workers as well as in the runner: the workers get what the runner gets
    (secrets, storage Secret, settings, service account); the scheduler only the service account and pull secrets."""
    from flyteplugins.dask.task import Dask

    manifest = _identity_manifest(validators, Dask())
    runner = manifest["spec"]["job"]["spec"]
    cluster = manifest["spec"]["cluster"]["spec"]
    _assert_call_identity(cluster["worker"]["spec"], runner)
    scheduler = cluster["scheduler"]["spec"]
    assert scheduler["serviceAccountName"] == "runner" and scheduler["imagePullSecrets"] == [{"name": "regcred"}]
    [container] = scheduler["containers"]
    assert all("valueFrom" not in e for e in container["env"]) and "envFrom" not in container


def _identity_manifest(validators, plugin_config) -> dict:
    """The custom resource of a task with secrets (env and mounted), under settings with a service account, pull
    secrets and a storage Secret; checked against its CRD."""
    from flyte import _initialize

    flyte.init(kubernetes={"storage": "s3://my-bucket/flyte", "service_account": "runner",
                           "image_pull_secrets": ["regcred"], "storage_env_secret": "s3-creds"})
    try:
        env = flyte.TaskEnvironment(name="golden", image="ghcr.io/acme/app:2", plugin_config=plugin_config,
                                    secrets=[flyte.Secret(key="token", group="creds"),
                                             flyte.Secret(key="cert", group="tls", mount="/etc/flyte/secrets")])

        async def work(x: int) -> int:
            return x

        [manifest] = flyte.kubernetes.dry_run(env.task(work), 1, run_name="identity")
    finally:
        _initialize._current = None
    _check(validators, manifest)
    return manifest


def _assert_call_identity(pod: dict, call_pod: dict) -> None:
    """``pod`` has the identity of the call's own pod (from :func:`_identity_manifest`)."""
    [container] = pod["containers"]
    assert pod["serviceAccountName"] == call_pod["serviceAccountName"] == "runner"
    assert pod["imagePullSecrets"] == call_pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert container["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    env_vars = {e["name"]: e for e in container["env"]}
    assert env_vars["CREDS_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "creds", "key": "token"}
    assert "FLYTE_K8S_SETTINGS" in env_vars  # the tier's settings, for nested calls and the store
    assert env_vars["FLYTE_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    [volume] = [v for v in pod["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == "tls"
    assert [m["mountPath"] for m in container["volumeMounts"] if m["name"] == volume["name"]] == \
        ["/etc/flyte/secrets/tls"]


def test_ray_job_without_shutdown_has_no_ttl(validators):
    """shutdown_after_job_finishes=False (the default, as in flytekit) is kept: no TTL (KubeRay rejects a TTL
    without shutdown); the controller deletes the RayJob after the call."""
    from kube_double.operators.ray import validate

    from flyteplugins.ray.task import RayJobConfig, WorkerNodeConfig

    manifest = _manifest(RayJobConfig(worker_node_config=[WorkerNodeConfig(group_name="w")],
                                      shutdown_after_job_finishes=False))
    _check(validators, manifest)
    assert manifest["spec"]["shutdownAfterJobFinishes"] is False
    assert "ttlSecondsAfterFinished" not in manifest["spec"]
    assert validate(manifest) is None  # the (fake) operator's own rules
    shut = _manifest(RayJobConfig(worker_node_config=[WorkerNodeConfig(group_name="w")],
                                  shutdown_after_job_finishes=True))
    assert shut["spec"]["shutdownAfterJobFinishes"] is True and shut["spec"]["ttlSecondsAfterFinished"] == 3600
    assert validate(shut) is None


def test_dask_job(validators):
    from flyteplugins.dask.task import Dask, Scheduler, WorkerGroup

    config = Dask(scheduler=Scheduler(image="ghcr.io/acme/dask:1", resources=flyte.Resources(cpu="1", memory="1Gi")),
                  workers=WorkerGroup(number_of_workers=3, resources=flyte.Resources(cpu="2", memory="4Gi")))
    manifest = _manifest(config)
    assert manifest["kind"] == "DaskJob"
    _check(validators, manifest)
    cluster = manifest["spec"]["cluster"]["spec"]
    assert cluster["worker"]["replicas"] == 3
    assert cluster["scheduler"]["spec"]["containers"][0]["image"] == "ghcr.io/acme/dask:1"
    assert cluster["worker"]["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}
    runner = manifest["spec"]["job"]
    assert runner["spec"]["restartPolicy"] == "Never" and runner["spec"]["containers"][0]["name"] == "job"


@pytest.mark.parametrize("nnodes, replicas, low", [(2, 2, 2), ("1:3", 3, 1)])
def test_pytorch_elastic_job(validators, nnodes, replicas, low):
    from flyteplugins.pytorch.task import Elastic

    manifest = _manifest(Elastic(nnodes=nnodes, nproc_per_node=2, max_restarts=1))
    assert manifest["kind"] == "PyTorchJob"
    _check(validators, manifest)
    spec = manifest["spec"]
    policy = spec["elasticPolicy"]
    assert (policy["minReplicas"], policy["maxReplicas"], policy["nProcPerNode"]) == (low, replicas, 2)
    assert policy["rdzvBackend"] == "c10d" and policy["maxRestarts"] == 1
    assert list(spec["pytorchReplicaSpecs"]) == ["Worker"] and spec["pytorchReplicaSpecs"]["Worker"]["replicas"] == \
        replicas
    # A failed node fails the job (flytekit's default), rather than rerunning the task in place: retries are the SDK's.
    worker = spec["pytorchReplicaSpecs"]["Worker"]
    assert worker["restartPolicy"] == worker["template"]["spec"]["restartPolicy"] == "Never"


def test_pytorch_master_worker_job(validators):
    from flyteplugins.pytorch.task import CleanPodPolicy, Master, PyTorch, RunPolicy, Worker

    config = PyTorch(master=Master(requests=flyte.Resources(cpu="1", memory="1Gi")),
                     worker=Worker(replicas=2, limits=flyte.Resources(cpu="2", memory="2Gi")),
                     run_policy=RunPolicy(clean_pod_policy=CleanPodPolicy.ALL, ttl_seconds_after_finished=60,
                                          active_deadline_seconds=600, backoff_limit=2),
                     nccl_heartbeat_timeout_sec=300)
    manifest = _manifest(config)
    _check(validators, manifest)
    spec = manifest["spec"]
    assert spec["runPolicy"] == {"cleanPodPolicy": "All", "ttlSecondsAfterFinished": 60,
                                 "activeDeadlineSeconds": 600, "backoffLimit": 2}
    master, worker = spec["pytorchReplicaSpecs"]["Master"], spec["pytorchReplicaSpecs"]["Worker"]
    assert master["replicas"] == 1 and worker["replicas"] == 2
    assert master["template"]["metadata"]["labels"]["flyte.org/primary"] == "true"
    assert "flyte.org/primary" not in worker["template"]["metadata"]["labels"]
    env = {e["name"]: e.get("value") for e in master["template"]["spec"]["containers"][0]["env"]}
    assert env["TORCH_NCCL_HEARTBEAT_TIMEOUT_SEC"] == "300"
    assert worker["template"]["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}
    assert master["restartPolicy"] == worker["restartPolicy"] == "Never"
    # Only rank 0's documents are the call's: a worker's own error goes below, where it cannot overwrite them.
    [master_args, worker_args] = [r["template"]["spec"]["containers"][0]["args"] for r in (master, worker)]
    outputs = master_args[master_args.index("--outputs") + 1]
    assert worker_args[worker_args.index("--outputs") + 1] == f"{outputs}/replicas/worker"


def test_single_node_and_attached_configs_run_as_plain_jobs():
    from flyteplugins.dask.task import Dask
    from flyteplugins.pytorch.task import Elastic
    from flyteplugins.ray.task import RayJobConfig

    for config in (Elastic(nnodes=1), RayJobConfig(address="ray://head:10001"), Dask(scheduler_address="tcp://s:8786")):
        assert _manifest(config)["kind"] == "Job"


def test_embedded_setting_runs_plugin_tasks_as_jobs():
    from flyte import _initialize
    from flyteplugins.spark.task import Spark

    flyte.init(kubernetes={"storage": "s3://b/p", "plugin_resources": "embedded"})
    try:
        assert _manifest(Spark())["kind"] == "Job"
    finally:
        _initialize._current = None


@pytest.mark.parametrize("program, kind", [("elastic_dry.py", "PyTorchJob"), ("master_worker_dry.py", "PyTorchJob")])
def test_dry_run_cli_prints_the_pytorch_job(tmp_path, validators, program, kind):
    source = {
        "elastic_dry.py": "from flyteplugins.pytorch.task import Elastic\nconfig = Elastic(nnodes=2)\n",
        "master_worker_dry.py": "from flyteplugins.pytorch.task import Master, PyTorch, Worker\n"
                                "config = PyTorch(master=Master(), worker=Worker(replicas=1))\n",
    }[program]
    path = Path(tmp_path) / program
    path.write_text(source + "import flyte\nenv = flyte.TaskEnvironment(name='t', plugin_config=config)\n\n\n"
                             "@env.task\nasync def train(epochs: int) -> float:\n    return 0.0\n")
    result = subprocess.run([sys.executable, "-m", "flyte", "run", "--dry-run", str(path), "train", "--epochs", "2"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    [manifest] = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert manifest["kind"] == kind
    _check(validators, manifest)


def test_trainer_v2_train_job_when_the_settings_select_it(validators):
    from flyte import _initialize
    from flyteplugins.pytorch.task import Elastic

    flyte.init(kubernetes={"storage": "s3://b/p", "pytorch_resource": "TrainJob",
                           "training_runtime": "torch-distributed", "storage_env_secret": "s3-creds"})
    try:
        manifest = _manifest(Elastic(nnodes=3, nproc_per_node=2))
    finally:
        _initialize._current = None
    assert manifest["kind"] == "TrainJob"
    _check(validators, manifest)
    spec = manifest["spec"]
    assert spec["runtimeRef"] == {"apiGroup": "trainer.kubeflow.org", "kind": "ClusterTrainingRuntime",
                                  "name": "torch-distributed"}
    assert (spec["trainer"]["numNodes"], spec["trainer"]["numProcPerNode"]) == (3, 2)
    assert spec["trainer"]["command"] == ["python", "-m", "flyte.runtime"]
    # No envFrom in a trainer: the storage Secret's credential keys come one by one, each optional.
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in spec["trainer"]["env"]
            if "secretKeyRef" in e.get("valueFrom", {})}
    assert refs["AWS_SECRET_ACCESS_KEY"] == {"name": "s3-creds", "key": "AWS_SECRET_ACCESS_KEY", "optional": True}
    assert {"AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "AZURE_STORAGE_ACCOUNT_KEY"} <= set(refs)
    labels = spec["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0][
        "template"]["spec"]["template"]["metadata"]["labels"]
    assert labels["flyte.org/primary"] == "true"


def test_trainer_v2_train_job_of_a_master_worker_task(validators):
    """PyTorch(master, worker) as a TrainJob: one process per node, run through the node command that gives it the
    RANK/WORLD_SIZE/MASTER_* Trainer passes only as PET_* (which the trainer's env must not set); mounted secrets
    reach the node container through the runtime patch."""
    from flyte import _initialize
    from flyteplugins.pytorch.task import Master, PyTorch, Worker

    flyte.init(kubernetes={"storage": "s3://b/p", "pytorch_resource": "TrainJob"})
    try:
        env = flyte.TaskEnvironment(name="golden", image="ghcr.io/acme/app:2",
                                    plugin_config=PyTorch(master=Master(requests=flyte.Resources(cpu="2")),
                                                          worker=Worker(replicas=2)),
                                    secrets=[flyte.Secret(key="token", group="creds", mount="/etc/flyte/secrets")])

        async def work(x: int) -> int:
            return x

        [manifest] = flyte.kubernetes.dry_run(env.task(work), 1, run_name="golden")
    finally:
        _initialize._current = None
    assert manifest["kind"] == "TrainJob"
    _check(validators, manifest)
    trainer = manifest["spec"]["trainer"]
    assert trainer["command"] == ["python", "-m", "flyteplugins.pytorch._k8s"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (3, 1)
    assert trainer["resourcesPerNode"] == {"requests": {"cpu": "2"}}
    assert not [e for e in trainer["env"] if e["name"].startswith("PET_")]  # Trainer's reserved names
    pod = manifest["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0][
        "template"]["spec"]["template"]["spec"]
    [mount] = pod["containers"][0]["volumeMounts"]
    assert pod["containers"][0]["name"] == "node" and mount["name"] == pod["volumes"][0]["name"]
