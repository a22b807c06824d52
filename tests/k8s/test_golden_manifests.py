"""Golden manifests: what a remote run creates for a matrix of tasks (a plain task and every plugin's configs), stored
under ``golden/`` and compared field by field, so that any change to a manifest shows up in review. Each one is also
validated against its operator's CRD (``../shared/k8s-crds``, unknown fields rejected) and against the operators'
rules that the schemas do not hold (:func:`operator_rule_violations`). And ``flyte run --dry-run FILE TASK`` prints
every plugin's resource, valid, without a cluster or a config.

After an intended change: ``FLYTE_UPDATE_GOLDEN=1 pytest tests/k8s/test_golden_manifests.py``, then review the diff
of ``tests/k8s/golden/``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _k8s_testkit import CRDS

import flyte
import flyte.kubernetes

pytestmark = [pytest.mark.k8s, pytest.mark.skipif(not CRDS.is_dir(), reason="needs ../shared/k8s-crds")]
GOLDEN = Path(__file__).parent / "golden"
PROGRAMS = Path(__file__).parent / "programs"
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# What may differ between machines and versions without the manifest meaning anything else.
VOLATILE = [(re.compile(r"/tasks/[0-9a-f]{8,}\.pkl"), "/tasks/<digest>.pkl"),
            (re.compile(r"/bundles/[0-9a-f]{8,}\.zip"), "/bundles/<digest>.zip")]


def _cases() -> dict[str, tuple[object, dict]]:
    """name -> (plugin_config or None, extra settings)."""
    from flyteplugins.dask.task import Dask, Scheduler, WorkerGroup
    from flyteplugins.mpi.task import HorovodJob, Launcher, MPIJob, Worker
    from flyteplugins.pytorch.task import Elastic, Master, PyTorch, RunPolicy
    from flyteplugins.pytorch.task import Worker as TorchWorker
    from flyteplugins.ray.task import HeadNodeConfig, RayJobConfig, WorkerNodeConfig
    from flyteplugins.spark.task import GenericSparkConf, Spark
    from flyteplugins.tensorflow.task import PS, Chief, TfJob
    from flyteplugins.tensorflow.task import Worker as TfWorker

    template = flyte.PodTemplate(pod_spec={"containers": [{"name": "primary"}],
                                           "tolerations": [{"key": "pool", "operator": "Exists"}]},
                                 labels={"team": "ml"})
    return {
        "job-plain": (None, {}),
        "spark-defaults": (Spark(), {}),
        "spark-tuned": (Spark(spark_conf={"spark.executor.instances": "3", "spark.executor.cores": "2",
                                          "spark.executor.memory": "1g", "spark.driver.memory": "1g"},
                              hadoop_conf={"fs.s3a.fast.upload": "true"}, driver_pod=template,
                              executor_pod=template), {}),
        "spark-jvm": (GenericSparkConf(main_class="org.apache.spark.examples.SparkPi",
                                       applications_path="local:///opt/spark/examples/jars/spark-examples.jar"), {}),
        "ray-one-group": (RayJobConfig(worker_node_config=[WorkerNodeConfig(group_name="cpu", replicas=2)]), {}),
        "ray-autoscaling": (RayJobConfig(head_node_config=HeadNodeConfig(ray_start_params={"num-cpus": "0"}),
                                         worker_node_config=[WorkerNodeConfig(group_name="cpu", replicas=2,
                                                                              min_replicas=1, max_replicas=5)],
                                         enable_autoscaling=True, runtime_env={"pip": ["emoji"]},
                                         shutdown_after_job_finishes=True, ttl_seconds_after_finished=120), {}),
        "dask-defaults": (Dask(), {}),
        "dask-sized": (Dask(scheduler=Scheduler(image="ghcr.io/acme/dask:1"),
                            workers=WorkerGroup(number_of_workers=4, image="ghcr.io/acme/dask:1")), {}),
        "pytorch-elastic-2": (Elastic(nnodes=2, nproc_per_node=2), {}),
        "pytorch-elastic-range": (Elastic(nnodes="1:3", max_restarts=2), {}),
        "pytorch-master-worker": (PyTorch(master=Master(), worker=TorchWorker(replicas=2),
                                          run_policy=RunPolicy(backoff_limit=2, ttl_seconds_after_finished=600)), {}),
        "trainjob-elastic": (Elastic(nnodes=3, nproc_per_node=2), {"pytorch_resource": "TrainJob"}),
        "tfjob": (TfJob(chief=Chief(replicas=1), worker=TfWorker(replicas=2), ps=PS(replicas=1)), {}),
        "mpijob": (MPIJob(launcher=Launcher(), worker=Worker(replicas=2), slots=2), {}),
        "mpijob-training-operator": (MPIJob(worker=Worker(replicas=2)), {"mpi_operator": "training-operator"}),
        "horovodjob": (HorovodJob(worker=Worker(replicas=2), slots=1), {}),
    }


def _manifests(name: str) -> list[dict]:
    from flyte import _initialize

    plugin_config, settings = _cases()[name]
    env = flyte.TaskEnvironment(name="golden", plugin_config=plugin_config, image="ghcr.io/acme/app:2",
                                resources=flyte.Resources(cpu="1", memory="2Gi"), env_vars={"MODE": "fast"},
                                secrets=[flyte.Secret(key="token", group="creds")])

    async def work(x: int) -> int:
        return x

    async def job(x: int) -> None:
        return None

    task = env.task(job if name == "spark-jvm" else work)  # a JVM application's task returns nothing
    flyte.init(kubernetes={"storage": "s3://my-bucket/flyte", "namespace": "ml", "service_account": "runner",
                           **settings})
    try:
        return flyte.kubernetes.dry_run(task, 1, run_name="golden")
    finally:
        _initialize._current = None


def _normalized(manifests: list[dict]) -> str:
    text = json.dumps(manifests)  # plain data: no YAML anchors for shared parts
    for pattern, replacement in VOLATILE:
        text = pattern.sub(replacement, text)
    data = json.loads(text)
    for manifest in data:
        if manifest.get("kind") == "RayJob":
            manifest["spec"]["rayClusterSpec"]["rayVersion"] = "<ray version>"
    return yaml.safe_dump_all(data, sort_keys=True, width=120)


@pytest.fixture(scope="module")
def validators():
    from kube_double.crds import load_crds

    return {(rt.group, rt.kind): rt.validators for rt in load_crds(str(CRDS))}


def schema_violations(validators, manifest: dict) -> list[str]:
    if manifest["apiVersion"] in ("batch/v1", "v1"):
        return []
    group, version = manifest["apiVersion"].split("/")
    validator = validators[(group, manifest["kind"])][version]
    return [f"unknown field {path}" for path in validator.unknown(manifest)] + [
        f"{where}: {message}" for where, message in validator.errors(manifest) if "'metadata'" not in message]


def _replica_range(where: str, low, replicas, high) -> list[str]:
    if low is not None and high is not None and low > high:
        return [f"{where}: minReplicas {low} > maxReplicas {high}"]
    if replicas is not None and ((low is not None and replicas < low) or (high is not None and replicas > high)):
        return [f"{where}: replicas {replicas} outside [{low}, {high}]"]
    return []


def operator_rule_violations(manifest: dict) -> list[str]:
    """The operators' admission rules that their CRD schemas do not express, for the kinds the plugins build."""
    kind, spec, name = manifest["kind"], manifest.get("spec") or {}, manifest["metadata"]["name"]
    problems = [] if DNS_1035.match(name) and len(name) <= 63 else [f"name {name!r} is not a DNS-1035 label"]
    if kind == "RayJob":
        if len(name) > 47:  # KubeRay names the cluster and its services after the job
            problems.append(f"RayJob name {name!r} is longer than 47")
        if spec.get("ttlSecondsAfterFinished") and not spec.get("shutdownAfterJobFinishes"):
            problems.append("RayJob ttlSecondsAfterFinished needs shutdownAfterJobFinishes")
        for group in spec["rayClusterSpec"].get("workerGroupSpecs") or []:
            problems += _replica_range(f"worker group {group['groupName']}", group.get("minReplicas"),
                                       group.get("replicas"), group.get("maxReplicas"))
    elif kind == "PyTorchJob":
        replicas = spec["pytorchReplicaSpecs"]
        if "Master" in replicas and replicas["Master"].get("replicas", 1) != 1:
            problems.append("PyTorchJob Master must have exactly 1 replica")
        elastic = spec.get("elasticPolicy")
        if elastic:
            problems += _replica_range("elasticPolicy", elastic.get("minReplicas"),
                                       replicas.get("Worker", {}).get("replicas"), elastic.get("maxReplicas"))
            if "Master" in replicas:
                problems.append("an elastic PyTorchJob has Workers only")
            if (elastic.get("nProcPerNode") or 1) < 1:
                problems.append("elasticPolicy nProcPerNode must be >= 1")
    elif kind == "SparkApplication":
        if spec["type"] == "Python" and not spec.get("mainApplicationFile", "").endswith(".py"):
            problems.append("a Python SparkApplication's mainApplicationFile is a .py file")
        if spec["type"] in ("Java", "Scala") and not spec.get("mainClass"):
            problems.append(f"a {spec['type']} SparkApplication needs mainClass")
        if (spec.get("executor") or {}).get("instances", 1) < 1:
            problems.append("executor.instances must be >= 1")
    elif kind == "DaskJob":
        runner = spec["job"]["spec"]
        if runner.get("restartPolicy") != "Never":
            problems.append("the DaskJob runner's restartPolicy must be Never")
        if spec["cluster"]["spec"]["worker"].get("replicas", 1) < 1:
            problems.append("DaskJob worker replicas must be >= 1")
    elif kind == "MPIJob":
        launcher = spec["mpiReplicaSpecs"]["Launcher"]
        if launcher.get("replicas", 1) != 1:
            problems.append("an MPIJob has exactly 1 launcher")
    elif kind == "TrainJob":
        if (spec.get("trainer") or {}).get("numNodes", 1) < 1:
            problems.append("TrainJob numNodes must be >= 1")
    if kind in ("PyTorchJob", "TFJob", "MPIJob"):
        key = {"PyTorchJob": "pytorchReplicaSpecs", "TFJob": "tfReplicaSpecs", "MPIJob": "mpiReplicaSpecs"}[kind]
        for replica_type, replica in spec[key].items():
            if replica.get("replicas", 1) < 1:
                problems.append(f"{kind} {replica_type} replicas must be >= 1")
    return problems


@pytest.fixture
def no_store_endpoint(monkeypatch):
    """The caller's object-store endpoint settings reach the pods; the goldens are of a caller with none (the test
    session's S3 server sets them once a Kubernetes test has started it)."""
    from flyte._k8s.pods import _STORAGE_ENDPOINT_VARS

    for name in _STORAGE_ENDPOINT_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("name", sorted(_cases()))
def test_golden_manifest(name, validators, no_store_endpoint):
    manifests = _manifests(name)
    for manifest in manifests:
        assert schema_violations(validators, manifest) == []
        assert operator_rule_violations(manifest) == []
    text = _normalized(manifests)
    path = GOLDEN / f"{name}.yaml"
    if os.environ.get("FLYTE_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden manifest {path.name}: run with FLYTE_UPDATE_GOLDEN=1 and review it"
    assert yaml.safe_load_all(text) and list(yaml.safe_load_all(text)) == list(yaml.safe_load_all(path.read_text())), \
        f"{name}'s manifests changed; if intended, run with FLYTE_UPDATE_GOLDEN=1 and review tests/k8s/golden/"


def test_the_operator_rules_catch_what_the_schemas_let_through():
    ray = {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": {"name": "r" * 50},
           "spec": {"ttlSecondsAfterFinished": 60, "shutdownAfterJobFinishes": False, "rayClusterSpec": {
               "workerGroupSpecs": [{"groupName": "g", "minReplicas": 3, "replicas": 1, "maxReplicas": 2}]}}}
    assert len(operator_rule_violations(ray)) == 3
    torch = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "t"},
             "spec": {"elasticPolicy": {"minReplicas": 2, "maxReplicas": 4},
                      "pytorchReplicaSpecs": {"Worker": {"replicas": 5}}}}
    assert operator_rule_violations(torch) == ["elasticPolicy: replicas 5 outside [2, 4]"]


DRY_RUN_PROGRAMS = {
    "SparkApplication": "from flyteplugins.spark.task import Spark\nconfig = Spark(spark_conf="
                        "{'spark.executor.instances': '2'})\n",
    "RayJob": "from flyteplugins.ray.task import RayJobConfig, WorkerNodeConfig\n"
              "config = RayJobConfig(worker_node_config=[WorkerNodeConfig(group_name='w', replicas=2)])\n",
    "DaskJob": "from flyteplugins.dask.task import Dask, WorkerGroup\n"
               "config = Dask(workers=WorkerGroup(number_of_workers=2))\n",
    "PyTorchJob": "from flyteplugins.pytorch.task import Elastic\nconfig = Elastic(nnodes=2)\n",
    "TFJob": "from flyteplugins.tensorflow.task import TfJob, Worker\nconfig = TfJob(worker=Worker(replicas=2))\n",
    "MPIJob": "from flyteplugins.mpi.task import MPIJob, Worker\nconfig = MPIJob(worker=Worker(replicas=2))\n",
}


@pytest.mark.parametrize("kind", sorted(DRY_RUN_PROGRAMS))
def test_dry_run_cli_prints_each_plugins_resource(kind, tmp_path, validators):
    """``flyte run --dry-run FILE TASK --arg`` as users type it, with no cluster and no config file."""
    program = tmp_path / "job.py"
    program.write_text(DRY_RUN_PROGRAMS[kind] + "import flyte\nenv = flyte.TaskEnvironment(name='t', "
                       "plugin_config=config)\n\n\n@env.task\nasync def work(n: int) -> int:\n    return n\n")
    result = subprocess.run([sys.executable, "-m", "flyte", "run", "--dry-run", str(program), "work", "--n", "3"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    [manifest] = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert manifest["kind"] == kind
    assert schema_violations(validators, manifest) == [] and operator_rule_violations(manifest) == []
