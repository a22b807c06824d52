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
        Spark(spark_conf={"spark.executor.instances": "3", "spark.executor.memory": "2g", "spark.driver.cores": "2"},
              hadoop_conf={"fs.s3a.fast.upload": "true"}, driver_pod=template, executor_pod=template),
        Spark(),
        GenericSparkConf(main_class="org.apache.spark.examples.SparkPi",
                         applications_path="local:///opt/spark/examples/jars/spark-examples.jar"),
    ]


@pytest.mark.parametrize("index", range(3))
def test_spark_application(validators, index):
    config = _spark_configs()[index]
    manifest = _manifest(config)
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
    if index == 2:
        assert spec["type"] == "Java" and spec["mainClass"] == "org.apache.spark.examples.SparkPi"


def test_ray_job(validators):
    from flyteplugins.ray.task import AutoscalerOptionsConfig, HeadNodeConfig, RayJobConfig, WorkerNodeConfig

    config = RayJobConfig(
        worker_node_config=[WorkerNodeConfig(group_name="cpu", replicas=2, min_replicas=1, max_replicas=4,
                                             ray_start_params={"num-cpus": "1"},
                                             requests=flyte.Resources(cpu="1", memory="1Gi"))],
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
                           "training_runtime": "torch-distributed"})
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
    labels = spec["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0][
        "template"]["spec"]["template"]["metadata"]["labels"]
    assert labels["flyte.org/primary"] == "true"
