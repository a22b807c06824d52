"""The fake operators of the API server double (kube_double.operators), driven as a user would: manifests applied
with kubectl, plain Python programs as the workloads, which really run on the installed engines inside the
double's pods. After each custom resource is deleted (foreground cascade) nothing may be left: no pod objects, no
pod process, no stray engine process, no /tmp litter."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from kube_double import KubeDouble  # noqa: E402
from kube_double.testing import events_for, kubectl, wait_for  # noqa: E402

CRDS = HERE.parents[1].parent / "shared" / "k8s-crds"

pytestmark = [pytest.mark.k8s, pytest.mark.slow,
              pytest.mark.skipif(not CRDS.is_dir(), reason="the operator CRDs are not available")]

LITTER = ("kd-", "ray", "spark-", "blockmgr-", "dask-", "torchelastic_", "pyspark", "kube-double-")


def _tmp_entries() -> set[str]:
    return {e for e in os.listdir("/tmp") if e.startswith(LITTER)}


@pytest.fixture(scope="module")
def double():
    before = _tmp_entries()
    with KubeDouble(crd_dir=str(CRDS)) as d:
        yield d
    time.sleep(0.5)
    left = _tmp_entries() - before
    assert not left, f"/tmp litter: {left}"


# ----- helpers
def apply(double, manifest: dict) -> None:
    kubectl(double, "apply", "-f", "-", input=yaml.safe_dump(manifest))


def get(double, resource: str, name: str) -> dict | None:
    for item in double.objects(resource, "default"):
        if item["metadata"]["name"] == name:
            return item
    return None


def status_of(double, resource: str, name: str) -> dict:
    return (get(double, resource, name) or {}).get("status") or {}


def logs(double, target: str, container: str | None = None) -> str:
    args = ["logs", target] + (["-c", container] if container else [])
    return kubectl(double, *args).stdout


def owned_pods(double, uid: str) -> list[dict]:
    return [
        p for p in double.objects("pods", "default")
        if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])
    ]


def stray_processes(double) -> list[str]:
    """Processes started for the double's pods (they carry its KUBECONFIG) that are still alive."""
    out = []
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        if proc.pid == os.getpid():
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get("KUBECONFIG") == double.kubeconfig:
                out.append(f"{proc.pid} {' '.join(proc.info['cmdline'] or [])[:200]}")
        except (psutil.Error, OSError):
            continue
    return out


def delete_and_check_clean(double, kind: str, name: str) -> None:
    kubectl(double, "delete", kind, name, "--cascade=foreground", "--ignore-not-found", "--timeout=60s",
            timeout=90)
    plural = double._registry.resolve(kind).plural
    wait_for(lambda: get(double, plural, name) is None, timeout=30, message=f"{kind}/{name} gone")
    wait_for(lambda: not double.objects("pods", "default") and not double.objects("jobs", "default"), timeout=30,
             message="no pods and Jobs left")
    wait_for(lambda: not double.live_processes(), timeout=20, message="no pod process left")
    wait_for(lambda: not stray_processes(double), timeout=20,
             message=f"no stray process left: {stray_processes(double)}")
    for operator in double.operators.values():
        assert not operator.scratch_dirs, f"{operator.kind} scratch folders left: {operator.scratch_dirs}"


# ----- Spark
SPARK_SCRIPT = """
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
conf = spark.sparkContext.getConf()
print("master=" + conf.get("spark.master"), "name=" + conf.get("spark.app.name"), flush=True)
print("count=%d" % spark.range(100).count(), flush=True)
spark.stop()
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
"""


def spark_app(name: str, main: str, arguments=(), **spec) -> dict:
    return {
        "apiVersion": "sparkoperator.k8s.io/v1beta2",
        "kind": "SparkApplication",
        "metadata": {"name": name},
        "spec": {
            "type": "Python",
            "pythonVersion": "3",
            "mode": "cluster",
            "image": "spark:4.0.0",
            "sparkVersion": "4.0.0",
            "mainApplicationFile": main,
            "arguments": list(arguments),
            "sparkConf": {"spark.sql.shuffle.partitions": "2", "spark.master": "k8s://ignored"},
            "restartPolicy": {"type": "Never"},
            "driver": {"cores": 1, "memory": "512m", "serviceAccount": "default",
                       "labels": {"team": "ml"}, "annotations": {"note": "driver"},
                       "env": [{"name": "GREETING", "value": "hi"}]},
            "executor": {"instances": 1, "cores": 2, "memory": "512m"},
            **spec,
        },
    }


def spark_state(double, name):
    return (status_of(double, "sparkapplications", name).get("applicationState") or {}).get("state")


@pytest.mark.spark
def test_spark_application_completes_and_expires(double, tmp_path):
    script = tmp_path / "count.py"
    script.write_text(SPARK_SCRIPT)
    apply(double, spark_app("spark-ok", f"local://{script}", timeToLiveSeconds=6))
    seen = set()

    def done():
        seen.add(spark_state(double, "spark-ok"))
        return spark_state(double, "spark-ok") in ("COMPLETED", "FAILED")

    wait_for(done, timeout=120, interval=0.1, message="the SparkApplication to finish")
    status = status_of(double, "sparkapplications", "spark-ok")
    assert status["applicationState"]["state"] == "COMPLETED", status
    assert "RUNNING" in seen  # SUBMITTED is usually too short to be seen by polling; its event stays:
    assert "SparkApplicationSubmitted" in {e["reason"] for e in events_for(double, "spark-ok")}
    assert status["submissionAttempts"] == 1 and status["lastSubmissionAttemptTime"]
    assert status["driverInfo"]["podName"] == "spark-ok-driver"
    pod = get(double, "pods", "spark-ok-driver")
    app = get(double, "sparkapplications", "spark-ok")
    labels = pod["metadata"]["labels"]
    assert labels["spark-role"] == "driver" and labels["team"] == "ml"
    assert labels["sparkoperator.k8s.io/app-name"] == "spark-ok"
    assert labels["sparkoperator.k8s.io/launched-by-spark-operator"] == "true"
    assert labels["spark-app-selector"] == status["sparkApplicationId"]
    assert pod["metadata"]["annotations"]["note"] == "driver"
    ref = pod["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["uid"], ref["controller"], ref["blockOwnerDeletion"]) == (
        "SparkApplication", app["metadata"]["uid"], True, True)
    container = pod["spec"]["containers"][0]
    assert container["name"] == "spark-kubernetes-driver"
    assert container["command"][0].endswith("bin/spark-submit")
    assert {"name": "GREETING", "value": "hi"} in container["env"]
    assert pod["spec"]["serviceAccountName"] == "default"
    out = logs(double, "spark-ok-driver")
    assert "count=100" in out and "master=local[2]" in out and "name=spark-ok" in out, out
    # timeToLiveSeconds: the application (and its driver pod) go
    wait_for(lambda: get(double, "sparkapplications", "spark-ok") is None, timeout=30, message="TTL deletion")
    delete_and_check_clean(double, "sparkapplication", "spark-ok")


@pytest.mark.spark
def test_spark_application_fails(double, tmp_path):
    script = tmp_path / "fail.py"
    script.write_text(SPARK_SCRIPT)
    apply(double, spark_app("spark-bad", f"local://{script}", arguments=["3"]))
    wait_for(lambda: spark_state(double, "spark-bad") in ("COMPLETED", "FAILED"), timeout=120, interval=0.1,
             message="the SparkApplication to finish")
    state = status_of(double, "sparkapplications", "spark-bad")["applicationState"]
    assert state["state"] == "FAILED" and "ExitCode: 3" in state["errorMessage"], state
    assert "count=100" in logs(double, "spark-bad-driver")
    delete_and_check_clean(double, "sparkapplication", "spark-bad")


@pytest.mark.spark
def test_spark_application_submission_fails(double):
    apply(double, spark_app("spark-nofile", "local:///nowhere/no-such-program-xyz"))
    wait_for(lambda: spark_state(double, "spark-nofile") == "SUBMISSION_FAILED", timeout=20, interval=0.02,
             message="SUBMISSION_FAILED")
    state = status_of(double, "sparkapplications", "spark-nofile")["applicationState"]
    assert "no-such-program-xyz" in state["errorMessage"]
    wait_for(lambda: spark_state(double, "spark-nofile") == "FAILED", timeout=10, message="FAILED after no retry")
    assert get(double, "pods", "spark-nofile-driver") is None
    delete_and_check_clean(double, "sparkapplication", "spark-nofile")


# ----- Ray
RAY_ENTRYPOINT = (
    "python -c \"import os, ray; ray.init(); print('nodes=%d' % len(ray.nodes())); "
    "print('answer=%d' % ray.get(ray.remote(lambda: 42).remote())); print('yaml=' + os.environ['RAY_RUNTIME_ENV_YAML'].strip())\""
)


def ray_job(name: str, entrypoint: str, workers: int = 1, **spec) -> dict:
    node = {"containers": [{"name": "ray-head", "image": "rayproject/ray:2.46.0",
                            "env": [{"name": "FROM_TEMPLATE", "value": "yes"}]}]}
    groups = [{"groupName": "small", "replicas": workers, "minReplicas": 0, "maxReplicas": 2, "rayStartParams": {},
               "template": {"spec": {"containers": [{"name": "ray-worker", "image": "rayproject/ray:2.46.0"}]}}}]
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": name},
        "spec": {
            "entrypoint": entrypoint,
            "runtimeEnvYAML": "env_vars:\n  A: b\n",
            "shutdownAfterJobFinishes": True,
            "rayClusterSpec": {
                "rayVersion": "2.46.0",
                "headGroupSpec": {"rayStartParams": {"num-cpus": "1"},
                                  "template": {"metadata": {"labels": {"team": "ml"}}, "spec": node}},
                "workerGroupSpecs": groups if workers else [],
            },
            **spec,
        },
    }


def ray_processes() -> list[str]:
    out = []
    for proc in psutil.process_iter(["pid", "name", "cmdline", "environ"]):
        try:
            text = " ".join(proc.info["cmdline"] or [])
            if ("raylet" in text or "gcs_server" in text) and "/tmp/kd-" in text:
                out.append(f"{proc.pid} {text[:150]}")
        except (psutil.Error, OSError, TypeError):
            continue
    return out


@pytest.mark.ray
def test_ray_job_completes_and_shuts_down(double):
    apply(double, ray_job("ray-ok", RAY_ENTRYPOINT, ttlSecondsAfterFinished=1))
    wait_for(lambda: status_of(double, "rayjobs", "ray-ok").get("jobDeploymentStatus") in ("Complete", "Failed"),
             timeout=150, interval=0.2, message="the RayJob to finish")
    status = status_of(double, "rayjobs", "ray-ok")
    assert status["jobDeploymentStatus"] == "Complete" and status["jobStatus"] == "SUCCEEDED", status
    assert status["endTime"] and status["startTime"] and status["rayClusterName"].startswith("ray-ok-")
    out = logs(double, "job/ray-ok")
    assert "answer=42" in out and "nodes=2" in out and "yaml=env_vars:" in out, out
    # shutdownAfterJobFinishes + ttlSecondsAfterFinished: the cluster goes, the RayJob and its submitter stay
    wait_for(lambda: not [p for p in double.objects("pods", "default")
                          if p["metadata"]["labels"].get("ray.io/node-type")], timeout=30, message="cluster pods gone")
    wait_for(lambda: not ray_processes(), timeout=20, message=f"no Ray process left: {ray_processes()}")
    assert get(double, "rayjobs", "ray-ok") is not None and get(double, "jobs", "ray-ok") is not None
    delete_and_check_clean(double, "rayjob", "ray-ok")


@pytest.mark.ray
def test_ray_job_validation_failed(double):
    manifest = ray_job("ray-invalid", "true", workers=0, ttlSecondsAfterFinished=10)
    manifest["spec"]["shutdownAfterJobFinishes"] = False
    apply(double, manifest)
    wait_for(lambda: status_of(double, "rayjobs", "ray-invalid").get("jobDeploymentStatus"), timeout=10,
             message="a deployment status")
    time.sleep(0.5)
    status = status_of(double, "rayjobs", "ray-invalid")
    assert status["jobDeploymentStatus"] == "ValidationFailed" and status["reason"] == "ValidationFailed", status
    assert "shutdownAfterJobFinishes" in status["message"]
    assert not double.objects("pods", "default")
    apply(double, {**ray_job("ray-mode", "true", workers=0), "spec": {
        **ray_job("ray-mode", "true", workers=0)["spec"], "submissionMode": "FancyMode"}})
    wait_for(lambda: status_of(double, "rayjobs", "ray-mode").get("jobDeploymentStatus") == "ValidationFailed",
             timeout=10, message="ValidationFailed for the submission mode")
    delete_and_check_clean(double, "rayjob", "ray-invalid")
    delete_and_check_clean(double, "rayjob", "ray-mode")


@pytest.mark.ray
def test_ray_job_entrypoint_fails(double):
    apply(double, ray_job("ray-bad", "python -c 'import ray; ray.init(); raise SystemExit(4)'", workers=0))
    wait_for(lambda: status_of(double, "rayjobs", "ray-bad").get("jobDeploymentStatus") in ("Complete", "Failed"),
             timeout=150, interval=0.2, message="the RayJob to finish")
    status = status_of(double, "rayjobs", "ray-bad")
    assert status["jobDeploymentStatus"] == "Failed" and status["jobStatus"] == "FAILED", status
    assert "code 4" in status["message"], status
    delete_and_check_clean(double, "rayjob", "ray-bad")
    assert not ray_processes()


# ----- Dask
DASK_RUNNER = """
import os
from distributed import Client
client = Client()
client.wait_for_workers(2, timeout=60)
assert len(client.scheduler_info()["workers"]) == 2
print("address=" + os.environ["DASK_SCHEDULER_ADDRESS"])
print("result=%d" % client.submit(lambda: 7).result(), flush=True)
client.close()
raise SystemExit(int(os.environ.get("EXIT", "0")))
"""


def dask_job(name: str, code: str, workers: int = 2, restart: str = "Never", env=()) -> dict:
    node = {"containers": [{"name": "dask", "image": "ghcr.io/dask/dask:latest", "args": ["dask-worker"],
                            "env": [{"name": "FROM_TEMPLATE", "value": "yes"}]}]}
    return {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskJob",
        "metadata": {"name": name},
        "spec": {
            "job": {"spec": {"restartPolicy": restart, "containers": [
                {"name": "job", "image": "ghcr.io/dask/dask:latest", "command": ["python", "-c", code],
                 "env": list(env)}]}},
            "cluster": {"spec": {
                "worker": {"replicas": workers, "spec": node},
                "scheduler": {"spec": node, "service": {"type": "ClusterIP", "selector": {
                    "dask.org/cluster-name": name, "dask.org/component": "scheduler"},
                    "ports": [{"name": "tcp-comm", "protocol": "TCP", "port": 8786, "targetPort": "tcp-comm"}]}},
            }},
        },
    }


def dask_status(double, name):
    return status_of(double, "daskjobs", name).get("jobStatus")


@pytest.mark.dask
def test_dask_job_succeeds(double):
    apply(double, dask_job("dask-ok", DASK_RUNNER))
    seen = set()

    def done():
        seen.add(dask_status(double, "dask-ok"))
        return dask_status(double, "dask-ok") in ("Successful", "Failed")

    wait_for(done, timeout=120, interval=0.05, message="the DaskJob to finish")
    status = status_of(double, "daskjobs", "dask-ok")
    assert status["jobStatus"] == "Successful", (status, logs(double, "dask-ok-runner"))
    assert "Running" in seen and status["startTime"] and status["endTime"]
    assert status["clusterName"] == "dask-ok" and status["jobRunnerPodName"] == "dask-ok-runner"
    out = logs(double, "dask-ok-runner")
    assert "result=7" in out and "address=tcp://127.0.0.1:" in out, out
    # the cluster's pods go, the runner pod and the DaskJob stay
    wait_for(lambda: [p["metadata"]["name"] for p in double.objects("pods", "default")] == ["dask-ok-runner"],
             timeout=30, message="only the runner pod left")
    assert get(double, "daskjobs", "dask-ok") is not None
    delete_and_check_clean(double, "daskjob", "dask-ok")


@pytest.mark.dask
def test_dask_job_fails(double):
    apply(double, dask_job("dask-bad", DASK_RUNNER, env=[{"name": "EXIT", "value": "3"}]))
    wait_for(lambda: dask_status(double, "dask-bad") in ("Successful", "Failed"), timeout=120, interval=0.1,
             message="the DaskJob to finish")
    assert dask_status(double, "dask-bad") == "Failed"
    wait_for(lambda: len(double.objects("pods", "default")) == 1, timeout=30, message="cluster pods deleted")
    delete_and_check_clean(double, "daskjob", "dask-bad")


@pytest.mark.dask
def test_dask_job_crash_loop_stays_running(double):
    apply(double, dask_job("dask-loop", "raise SystemExit(1)", workers=1, restart="OnFailure"))

    def restarted():
        pod = get(double, "pods", "dask-loop-runner") or {}
        statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
        return statuses[0].get("restartCount", 0) >= 2

    wait_for(restarted, timeout=60, message="the runner to be restarted")
    assert dask_status(double, "dask-loop") == "Running"
    delete_and_check_clean(double, "daskjob", "dask-loop")


# ----- PyTorch
TORCH_SCRIPT = """
import os, sys
import torch
import torch.distributed as dist
if os.environ.get("FAIL_RANK") == os.environ.get("RANK"):
    print("failing on purpose", flush=True)
    sys.exit(5)
dist.init_process_group("gloo")
value = torch.tensor([dist.get_rank() + 1.0])
dist.all_reduce(value)
print(json.dumps({"rank": dist.get_rank(), "world": dist.get_world_size(), "sum": value.item(),
                  "env": {k: v for k, v in os.environ.items() if k.startswith(("PET_", "MASTER_", "WORLD", "RANK"))}}),
      flush=True)
dist.destroy_process_group()
""".replace("import os, sys", "import json, os, sys")


def pytorch_job(name: str, script: Path, workers: int = 1, master: bool = True, command=None, env=(),
                run_policy=None, elastic=None, restart: str = "Never") -> dict:
    def replica(count):
        return {"replicas": count, "restartPolicy": restart, "template": {"spec": {"containers": [{
            "name": "pytorch", "image": "pytorch/pytorch:2.4.0", "command": command or ["python", str(script)],
            "env": list(env)}]}}}

    replicas = {"Worker": replica(workers)}
    if master:
        replicas["Master"] = replica(1)
    spec = {"pytorchReplicaSpecs": replicas, "runPolicy": run_policy or {}}
    if elastic:
        spec["elasticPolicy"] = elastic
    return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": name}, "spec": spec}


def conditions(double, name) -> dict:
    return {c["type"]: c for c in status_of(double, "pytorchjobs", name).get("conditions") or []}


def pytorch_finished(double, name):
    conds = conditions(double, name)
    return any(conds.get(t, {}).get("status") == "True" for t in ("Succeeded", "Failed"))


def rank_output(text: str) -> dict:
    lines = [line for line in text.splitlines() if line.startswith("{")]
    assert lines, text
    return json.loads(lines[-1])


@pytest.mark.torch
def test_pytorch_job_succeeds_then_ttl(double, tmp_path):
    script = tmp_path / "allreduce.py"
    script.write_text(TORCH_SCRIPT)
    apply(double, pytorch_job("pt-ok", script, run_policy={"ttlSecondsAfterFinished": 4}))
    wait_for(lambda: pytorch_finished(double, "pt-ok"), timeout=120, interval=0.1, message="the PyTorchJob")
    status = status_of(double, "pytorchjobs", "pt-ok")
    conds = conditions(double, "pt-ok")
    assert conds["Succeeded"]["status"] == "True" and conds["Succeeded"]["reason"] == "PyTorchJobSucceeded", status
    assert conds["Created"]["status"] == "True" and conds["Running"]["status"] == "False"
    assert status["conditions"][-1]["type"] == "Succeeded"
    assert status["replicaStatuses"]["Master"].get("succeeded") == 1
    assert status["startTime"] and status["completionTime"]
    master = get(double, "pods", "pt-ok-master-0")
    worker = get(double, "pods", "pt-ok-worker-0")
    assert master["metadata"]["labels"]["training.kubeflow.org/job-role"] == "master"
    assert worker["metadata"]["labels"]["training.kubeflow.org/replica-type"] == "worker"
    assert worker["metadata"]["labels"]["training.kubeflow.org/replica-index"] == "0"
    out_master = rank_output(logs(double, "pt-ok-master-0"))
    out_worker = rank_output(logs(double, "pt-ok-worker-0"))
    assert (out_master["rank"], out_worker["rank"], out_master["world"], out_master["sum"]) == (0, 1, 2, 3.0)
    assert out_master["env"]["MASTER_ADDR"] == "127.0.0.1" and out_worker["env"]["RANK"] == "1"
    # cleanPodPolicy None (the default): the pods stay until the TTL deletes the job
    assert {p["metadata"]["name"] for p in double.objects("pods", "default")} == {"pt-ok-master-0", "pt-ok-worker-0"}
    wait_for(lambda: get(double, "pytorchjobs", "pt-ok") is None, timeout=30, message="TTL deletion")
    delete_and_check_clean(double, "pytorchjob", "pt-ok")


@pytest.mark.torch
def test_pytorch_job_elastic(double, tmp_path):
    script = tmp_path / "allreduce.py"
    script.write_text(TORCH_SCRIPT)
    command = ["python", "-m", "torch.distributed.run", "--nnodes=$(PET_NNODES)",
               "--nproc-per-node=$(PET_NPROC_PER_NODE)", "--rdzv-backend=$(PET_RDZV_BACKEND)",
               "--rdzv-endpoint=$(PET_RDZV_ENDPOINT)", "--rdzv-id=pt-elastic", str(script)]
    manifest = pytorch_job("pt-elastic", script, workers=2, master=False, command=command,
                           run_policy={"cleanPodPolicy": "All"},
                           elastic={"minReplicas": 2, "maxReplicas": 2, "nProcPerNode": 1, "rdzvBackend": "c10d",
                                    "maxRestarts": 1})
    apply(double, manifest)
    wait_for(lambda: pytorch_finished(double, "pt-elastic"), timeout=150, interval=0.1, message="the PyTorchJob")
    conds = conditions(double, "pt-elastic")
    assert conds.get("Succeeded", {}).get("status") == "True", (
        status_of(double, "pytorchjobs", "pt-elastic"), logs(double, "pt-elastic-worker-0")[-3000:],
        logs(double, "pt-elastic-worker-1")[-3000:])
    # cleanPodPolicy All: every pod goes at the end
    wait_for(lambda: not double.objects("pods", "default"), timeout=30, message="all pods deleted")
    delete_and_check_clean(double, "pytorchjob", "pt-elastic")


@pytest.mark.torch
def test_pytorch_job_elastic_env(double, tmp_path):
    code = "import json, os; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('PET_')}))"
    manifest = pytorch_job("pt-env", tmp_path, workers=2, master=False, command=["python", "-c", code],
                           elastic={"minReplicas": 1, "maxReplicas": 2, "nProcPerNode": 1, "maxRestarts": 3,
                                    "rdzvId": "abc"})
    apply(double, manifest)
    wait_for(lambda: pytorch_finished(double, "pt-env"), timeout=60, interval=0.1, message="the PyTorchJob")
    env = rank_output(logs(double, "pt-env-worker-1"))
    assert env["PET_NNODES"] == "1:2" and env["PET_RDZV_BACKEND"] == "c10d" and env["PET_MAX_RESTARTS"] == "3"
    assert env["PET_RDZV_ENDPOINT"].startswith("127.0.0.1:") and env["PET_RDZV_ID"] == "abc"
    delete_and_check_clean(double, "pytorchjob", "pt-env")


@pytest.mark.torch
def test_pytorch_job_worker_fails(double, tmp_path):
    script = tmp_path / "allreduce.py"
    script.write_text(TORCH_SCRIPT)
    apply(double, pytorch_job("pt-bad", script, env=[{"name": "FAIL_RANK", "value": "1"}],
                              run_policy={"cleanPodPolicy": "Running"}))
    wait_for(lambda: pytorch_finished(double, "pt-bad"), timeout=120, interval=0.1, message="the PyTorchJob")
    conds = conditions(double, "pt-bad")
    assert conds["Failed"]["status"] == "True" and "Worker" in conds["Failed"]["message"], conds
    # cleanPodPolicy Running: the master, still waiting for its peer, is deleted; the failed worker stays
    wait_for(lambda: get(double, "pods", "pt-bad-master-0") is None, timeout=30, message="master deleted")
    assert get(double, "pods", "pt-bad-worker-0") is not None
    assert "failing on purpose" in logs(double, "pt-bad-worker-0")
    delete_and_check_clean(double, "pytorchjob", "pt-bad")


@pytest.mark.torch
def test_pytorch_job_deadline(double, tmp_path):
    manifest = pytorch_job("pt-slow", tmp_path, workers=0, command=["python", "-c", "import time; time.sleep(60)"],
                           run_policy={"activeDeadlineSeconds": 2})
    apply(double, manifest)
    wait_for(lambda: pytorch_finished(double, "pt-slow"), timeout=30, interval=0.1, message="the PyTorchJob")
    assert conditions(double, "pt-slow")["Failed"]["reason"] == "DeadlineExceeded"
    wait_for(lambda: not double.objects("pods", "default"), timeout=30, message="pods killed")
    delete_and_check_clean(double, "pytorchjob", "pt-slow")
