"""kubectl, the independent real client, against the Kubernetes API server test double."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import yaml
from kube_double import KubeDouble
from kube_double.testing import KUBECTL, kubectl, kubectl_env, wait_for

pytestmark = [pytest.mark.k8s, pytest.mark.skipif(not os.path.exists(KUBECTL), reason="kubectl not installed")]

CRD_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "k8s-crds")


@pytest.fixture(scope="module")
def double():
    with KubeDouble(crd_dir=CRD_DIR if os.path.isdir(CRD_DIR) else None) as double:
        yield double
        assert double.live_processes() == [] or wait_for(lambda: double.live_processes() == [], 10)


JOB = """
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: python:3.11
        command: ["python", "-c"]
        args: ["{code}"]
"""


def test_apply_get_watch_logs(double, tmp_path):
    manifest = tmp_path / "job.yaml"
    manifest.write_text(JOB.format(name="kc-hello", code="import time; print('hello from the pod'); time.sleep(0.5)"))
    watcher = subprocess.Popen(
        [KUBECTL, "get", "pods", "-w", "-o", "json", "--output-watch-events", "--request-timeout=20s"],
        env=kubectl_env(double),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out = kubectl(double, "apply", "-f", str(manifest))
        assert "job.batch/kc-hello created" in out.stdout
        jobs = json.loads(kubectl(double, "get", "jobs", "-o", "json").stdout)
        assert [j["metadata"]["name"] for j in jobs["items"]] == ["kc-hello"]
        # the pod goes to Succeeded, as seen by kubectl's watch
        decoder = json.JSONDecoder()
        buffer = ""
        phases = []
        deadline = time.monotonic() + 20
        while "Succeeded" not in phases and time.monotonic() < deadline:
            line = watcher.stdout.readline()
            if not line:
                break
            buffer += line
            try:
                event, end = decoder.raw_decode(buffer.strip())
            except ValueError:
                continue
            buffer = ""
            phases.append(event["object"]["status"].get("phase"))
        assert "Succeeded" in phases, phases
    finally:
        watcher.kill()
        watcher.communicate()
    logs = kubectl(double, "logs", "-f", "job/kc-hello")
    assert logs.stdout == "hello from the pod\n"
    table = kubectl(double, "get", "jobs").stdout
    assert "kc-hello" in table and "Complete" in table
    pods = kubectl(double, "get", "--raw", "/api/v1/namespaces/default/pods")
    raw = json.loads(pods.stdout)
    assert raw["kind"] == "PodList" and any(p["metadata"]["name"].startswith("kc-hello-") for p in raw["items"])
    kubectl(double, "delete", "job", "kc-hello", "--cascade=background")
    wait_for(lambda: not [p for p in double.objects("pods") if p["metadata"]["name"].startswith("kc-hello-")])


def test_delete_foreground_kills_process(double, tmp_path):
    manifest = tmp_path / "job.yaml"
    manifest.write_text(JOB.format(name="kc-sleeper", code="import time; print('up', flush=True); time.sleep(600)"))
    kubectl(double, "apply", "-f", str(manifest))
    wait_for(lambda: double.live_processes(), 10, message="the pod's process")
    pid = double.live_processes()[0]
    logs = kubectl(double, "logs", "job/kc-sleeper")
    assert "up" in logs.stdout or wait_for(lambda: "up" in kubectl(double, "logs", "job/kc-sleeper").stdout)
    result = kubectl(double, "delete", "job", "kc-sleeper", "--cascade=foreground", timeout=30)
    assert 'job.batch "kc-sleeper" deleted' in result.stdout
    assert double.objects("jobs") == [] or wait_for(lambda: double.objects("jobs") == [])
    assert not [p for p in double.objects("pods") if p["metadata"]["name"].startswith("kc-sleeper-")]
    wait_for(lambda: pid not in double.live_processes(), 5, message="the process to die")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.skipif(not os.path.isdir(CRD_DIR), reason="no CRDs")
def test_custom_resource_apply_and_unknown_field(double, tmp_path):
    with open(os.path.join(CRD_DIR, "kuberay", "ray-job.sample.yaml")) as handle:
        docs = [d for d in yaml.safe_load_all(handle) if d and d.get("kind") == "RayJob"]
    rayjob = docs[0]
    path = tmp_path / "rayjob.yaml"
    path.write_text(yaml.safe_dump(rayjob))
    out = kubectl(double, "apply", "-f", str(path))
    assert "rayjob.ray.io/rayjob-sample created" in out.stdout
    assert [r["metadata"]["name"] for r in double.objects("rayjobs")] == ["rayjob-sample"]
    assert "rayjob-sample" in kubectl(double, "get", "rayjobs").stdout
    bad = dict(rayjob, metadata={"name": "rayjob-bad"}, spec=dict(rayjob["spec"], entrypoinnt="typo"))
    path.write_text(yaml.safe_dump(bad))
    result = kubectl(double, "apply", "-f", str(path), check=False)
    assert result.returncode != 0
    assert 'unknown field "spec.entrypoinnt"' in result.stderr
    # an update through apply (client-side three-way merge patch) is accepted
    rayjob["spec"]["entrypoint"] = "python other.py"
    path.write_text(yaml.safe_dump(rayjob))
    assert "configured" in kubectl(double, "apply", "-f", str(path)).stdout
    assert double.objects("rayjobs")[0]["spec"]["entrypoint"] == "python other.py"
    kubectl(double, "delete", "rayjob", "rayjob-sample")
    assert double.objects("rayjobs") == []


CRASHING_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: kc-crasher
spec:
  restartPolicy: Always
  containers:
  - name: main
    image: python:3.11
    command: ["python", "-c"]
    args: ["import os; print('instance ' + os.environ.get('HOSTNAME', '?') + ' crashing', flush=True); raise SystemExit(3)"]
"""


def test_previous_log_of_a_crashed_container_as_kubectl_reads_it(double, tmp_path):
    """After a crash and restart, the SDK's ``previous_log`` (``previous=True``) gives the crashed instance's log,
    the same lines ``kubectl logs --previous`` shows."""
    import asyncio

    from flyte._k8s.client import Kube
    from flyte._k8s.logs import previous_log
    from flyte._k8s.settings import parse

    manifest = tmp_path / "pod.yaml"
    manifest.write_text(CRASHING_POD)
    kubectl(double, "apply", "-f", str(manifest))
    try:
        def restarted() -> bool:
            pod = json.loads(kubectl(double, "get", "pod", "kc-crasher", "-o", "json").stdout)
            return ((pod["status"].get("containerStatuses") or [{}])[0].get("restartCount") or 0) >= 1

        assert wait_for(restarted, 30)
        by_kubectl = kubectl(double, "logs", "kc-crasher", "--previous").stdout.strip()
        assert by_kubectl == "instance kc-crasher crashing"

        async def read() -> str:
            kube = await Kube.connect(parse({"kubeconfig": double.kubeconfig}))
            try:
                return await previous_log(kube, "default", "kc-crasher", "main")
            finally:
                await kube.close()

        assert asyncio.run(read()) == by_kubectl
    finally:
        kubectl(double, "delete", "pod", "kc-crasher", "--wait=true")
