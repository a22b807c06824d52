"""TensorFlow tasks run remotely as TFJobs, against the Kubernetes API server double and its fake TFJob operator,
which gives every replica pod its TF_CONFIG as the Kubeflow training operator does; and the fake operator itself
(TF_CONFIG per replica, the chief deciding the job, clean-up). Nothing is left behind."""

from __future__ import annotations

import json

import pytest
import yaml
from _k8s_testkit import REAL_CLUSTER, outputs_json, run_program, wait_clean

pytestmark = [pytest.mark.k8s, pytest.mark.real_cluster, pytest.mark.tensorflow, pytest.mark.slow]


def _left(kube) -> list[str]:
    return wait_clean(kube) + [f"tfjobs/{o['metadata']['name']}" for o in kube.objects("tfjobs", "default")]


def test_a_tensorflow_task_runs_as_a_tfjob_with_the_same_result_as_locally(config_dir, kube, tmp_path):
    """A chief and a worker training with MultiWorkerMirroredStrategy: the all-reduce only works if each pod got
    its TF_CONFIG from the operator; the chief's value is the call's, as in the local run of the same program."""
    remote = run_program("tf_mirrored.py", cwd=config_dir, timeout=280)
    assert remote.returncode == 0, remote.stderr[-5000:]
    elsewhere = tmp_path / "no-config"
    elsewhere.mkdir()
    local = run_program("tf_mirrored.py", cwd=elsewhere, timeout=280)
    assert local.returncode == 0, local.stderr[-5000:]
    out = outputs_json(remote)
    assert out == outputs_json(local)
    assert out["replicas"] == 2 and out["replica"] == "chief 0" and out["cluster"] == ["chief", "worker"]
    assert any(w != 0.0 for w in out["weights"])
    if not REAL_CLUSTER:
        reasons = {e.get("reason") for e in kube.objects("events", "default")
                   if (e.get("involvedObject") or {}).get("kind") == "TFJob"}
        assert {"TFJobCreated", "TFJobSucceeded"} <= reasons  # it ran as a TFJob, which the operator completed
        assert _left(kube) == []


# ----- the fake operator alone (reads the double's objects)

SCRIPT = """
import json, os, sys, time
print("TF_CONFIG=" + os.environ.get("TF_CONFIG", "none"), flush=True)
role = os.environ["ROLE"]
if role == "serve":
    time.sleep(600)
done, peers = os.environ.get("DONE_DIR"), int(os.environ.get("PEERS", "0"))
if peers:  # wait for that many peers to be through, then give their pods a moment to be seen done
    end = time.monotonic() + 120
    while len(os.listdir(done)) < peers and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(2)
elif done:
    open(os.path.join(done, str(os.getpid())), "w").close()
sys.exit(int(os.environ.get("EXIT", "0")))
"""


def _group(count: int, role: str, exit_code: int = 0, done_dir: str = "", peers: int = 0) -> dict:
    return {"replicas": count, "template": {"spec": {"containers": [{
        "name": "tensorflow", "image": "tensorflow/tensorflow:2.16.1", "command": ["python", "-c", SCRIPT],
        "env": [{"name": "ROLE", "value": role}, {"name": "EXIT", "value": str(exit_code)},
                {"name": "DONE_DIR", "value": done_dir}, {"name": "PEERS", "value": str(peers)}]}]}}}


def _apply(kube, name: str, specs: dict, **spec) -> None:
    from kube_double.testing import kubectl

    manifest = {"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "metadata": {"name": name},
                "spec": {"tfReplicaSpecs": specs, **spec}}
    kubectl(kube, "apply", "-f", "-", input=yaml.safe_dump(manifest))


def _job(kube, name: str) -> dict | None:
    return next((o for o in kube.objects("tfjobs", "default") if o["metadata"]["name"] == name), None)


def _conditions(kube, name: str) -> dict:
    return {c["type"]: c for c in ((_job(kube, name) or {}).get("status") or {}).get("conditions") or []}


def _finished(kube, name: str) -> bool:
    conditions = _conditions(kube, name)
    return any(conditions.get(t, {}).get("status") == "True" for t in ("Succeeded", "Failed"))


def _tf_config(kube, pod: str) -> dict | None:
    from kube_double.testing import kubectl

    [line] = [line for line in kubectl(kube, "logs", pod).stdout.splitlines() if line.startswith("TF_CONFIG=")]
    value = line.split("=", 1)[1]
    return None if value == "none" else json.loads(value)


def _delete(kube, name: str) -> None:
    from kube_double.testing import kubectl, wait_for

    kubectl(kube, "delete", "tfjob", name, "--cascade=foreground", "--ignore-not-found", "--timeout=60s", timeout=90)
    wait_for(lambda: _job(kube, name) is None, timeout=30, message=f"tfjob/{name} gone")
    wait_for(lambda: not kube.live_processes(), timeout=30, message="no pod process left")


@pytest.fixture
def double(kube):
    if REAL_CLUSTER:
        pytest.skip("reads the double's objects")
    return kube


def test_fake_operator_gives_each_replica_its_tf_config_and_the_chief_decides(double, tmp_path):
    from kube_double.testing import wait_for

    # The chief waits until the three other trainers are through, so that they are done (and keep their pods) when
    # it succeeds; the parameter server still serves.
    done = str(tmp_path)
    _apply(double, "tf-chief", {"Chief": _group(1, "train", done_dir=done, peers=3), "PS": _group(1, "serve"),
                                "Worker": _group(2, "train", done_dir=done),
                                "Evaluator": _group(1, "train", done_dir=done)},
           runPolicy={"cleanPodPolicy": "Running"})
    wait_for(lambda: _finished(double, "tf-chief"), timeout=120, interval=0.1, message="the TFJob")
    conditions = _conditions(double, "tf-chief")
    assert conditions["Succeeded"]["reason"] == "TFJobSucceeded" and conditions["Created"]["status"] == "True"
    configs = {pod: _tf_config(double, pod) for pod in ("tf-chief-chief-0", "tf-chief-worker-0", "tf-chief-worker-1",
                                                        "tf-chief-evaluator-0")}
    cluster = configs["tf-chief-chief-0"]["cluster"]
    assert sorted(cluster) == ["chief", "ps", "worker"] and len(cluster["worker"]) == 2  # no evaluator in it
    for pod, config in configs.items():
        kind, index = pod.split("-")[-2:]
        assert config == {"cluster": cluster, "task": {"type": kind, "index": int(index)}, "environment": "cloud"}
    labels = {p["metadata"]["name"]: p["metadata"]["labels"] for p in double.objects("pods", "default")}
    assert labels["tf-chief-chief-0"]["training.kubeflow.org/job-role"] == "master"
    assert "training.kubeflow.org/job-role" not in labels["tf-chief-worker-0"]
    # cleanPodPolicy Running: the parameter server, still serving when the chief succeeded, is deleted
    wait_for(lambda: not any(p["metadata"]["name"] == "tf-chief-ps-0" for p in double.objects("pods", "default")),
             timeout=30, message="the serving ps pod deleted")
    _delete(double, "tf-chief")


def test_fake_operator_without_a_chief_worker_0_decides_and_failures_fail_the_job(double):
    from kube_double.testing import wait_for

    _apply(double, "tf-alone", {"Worker": _group(1, "train")})
    wait_for(lambda: _finished(double, "tf-alone"), timeout=60, interval=0.1, message="the TFJob")
    assert _conditions(double, "tf-alone")["Succeeded"]["status"] == "True"
    assert _tf_config(double, "tf-alone-worker-0") is None  # a single replica is not distributed
    _delete(double, "tf-alone")

    _apply(double, "tf-bad", {"PS": _group(1, "serve"), "Worker": _group(2, "train", exit_code=3)})
    wait_for(lambda: _finished(double, "tf-bad"), timeout=60, interval=0.1, message="the TFJob")
    failed = _conditions(double, "tf-bad")["Failed"]
    assert failed["reason"] == "TFJobFailed" and "Worker replica(s) failed" in failed["message"]
    _delete(double, "tf-bad")
