"""The fake kubelet and Job controller of the Kubernetes API server test double."""

from __future__ import annotations

import json
import re
import time
import urllib.parse

import psutil
import pytest
from kube_double import KubeDouble
from kube_double.testing import container_state, create, events_for, get_pod, http, job_manifest, pod, wait_for

pytestmark = pytest.mark.k8s

PODS = "/api/v1/namespaces/default/pods"
JOBS = "/apis/batch/v1/namespaces/default/jobs"


@pytest.fixture(scope="module")
def double():
    with KubeDouble(image_pull_grace_s=0.2) as double:
        yield double
        wait_for(lambda: double.live_processes() == [], 10, message="no processes left")


def phase(double, name):
    return ((get_pod(double, name) or {}).get("status") or {}).get("phase")


def job(double, name):
    return next((j for j in double.objects("jobs") if j["metadata"]["name"] == name), None)


def job_condition(double, name):
    conditions = ((job(double, name) or {}).get("status") or {}).get("conditions") or []
    return {c["type"]: c for c in conditions}


def test_job_runs_pod_to_success(double):
    create(double, JOBS, job_manifest("ok-job", "print('done')"))
    wait_for(lambda: "Complete" in job_condition(double, "ok-job"), 10)
    conditions = job_condition(double, "ok-job")
    assert conditions["SuccessCriteriaMet"]["status"] == "True"
    status = job(double, "ok-job")["status"]
    assert status["succeeded"] == 1 and status["startTime"] and status["completionTime"]
    pods = [p for p in double.objects("pods") if p["metadata"]["labels"].get("job-name") == "ok-job"]
    assert len(pods) == 1
    labels = pods[0]["metadata"]["labels"]
    uid = job(double, "ok-job")["metadata"]["uid"]
    assert labels["batch.kubernetes.io/job-name"] == "ok-job" and labels["controller-uid"] == uid
    assert labels["batch.kubernetes.io/controller-uid"] == uid
    owner = pods[0]["metadata"]["ownerReferences"][0]
    assert owner["uid"] == uid and owner["controller"] and owner["blockOwnerDeletion"]
    assert job(double, "ok-job")["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    terminated = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0 and terminated["reason"] == "Completed"
    reasons = [e["reason"] for e in events_for(double, pods[0]["metadata"]["name"])]
    assert {"Scheduled", "Pulled", "Created", "Started"} <= set(reasons)


def test_backoff_limit_and_ttl(double):
    create(double, JOBS, job_manifest("fail-job", "import sys; sys.exit(3)", backoff=1, ttlSecondsAfterFinished=1))
    wait_for(lambda: "Failed" in job_condition(double, "fail-job"), 10)
    failed = job_condition(double, "fail-job")["Failed"]
    assert failed["reason"] == "BackoffLimitExceeded" and "FailureTarget" in job_condition(double, "fail-job")
    assert job(double, "fail-job")["status"]["failed"] == 2
    pods = [p for p in double.objects("pods") if p["metadata"]["labels"].get("job-name") == "fail-job"]
    assert len(pods) == 2
    assert pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    wait_for(lambda: job(double, "fail-job") is None, 5, message="ttlSecondsAfterFinished")
    wait_for(
        lambda: not [p for p in double.objects("pods") if p["metadata"]["labels"].get("job-name") == "fail-job"], 5
    )


def test_active_deadline_kills_pods(double):
    create(double, JOBS, job_manifest("slow-job", "import time; time.sleep(60)", activeDeadlineSeconds=1))
    wait_for(lambda: "Failed" in job_condition(double, "slow-job"), 10)
    assert job_condition(double, "slow-job")["Failed"]["reason"] == "DeadlineExceeded"
    wait_for(
        lambda: not [p for p in double.objects("pods") if p["metadata"]["labels"].get("job-name") == "slow-job"],
        10,
        message="the job's pods to go",
    )
    http(double, "DELETE", f"{JOBS}/slow-job")


def test_on_failure_restarts_and_previous_logs(double):
    code = (
        "import os, sys\n"
        "if not os.path.exists('marker'):\n"
        "    open('marker', 'w').close(); print('first'); sys.exit(1)\n"
        "print('second')\n"
    )
    create(double, JOBS, job_manifest("retry-job", code, restart="OnFailure", backoff=2))
    wait_for(lambda: "Complete" in job_condition(double, "retry-job"), 10)
    item = [p for p in double.objects("pods") if p["metadata"]["labels"].get("job-name") == "retry-job"][0]
    status = item["status"]["containerStatuses"][0]
    assert status["restartCount"] == 1 and status["lastState"]["terminated"]["exitCode"] == 1
    name = item["metadata"]["name"]
    assert http(double, "GET", f"{PODS}/{name}/log", raw=True) == (200, b"second\n")
    assert http(double, "GET", f"{PODS}/{name}/log?previous=true", raw=True) == (200, b"first\n")
    status, body = http(double, "GET", f"{PODS}/{name}/log?previous=true&container=nope")
    assert status == 400


def test_oom_killed(double):
    create(
        double,
        PODS,
        pod(
            "oom",
            "import time; b = b'x' * (300 * 1024 * 1024); time.sleep(30)",
            resources={"limits": {"memory": "100Mi"}},
        ),
    )
    wait_for(lambda: phase(double, "oom") == "Failed", 15)
    terminated = container_state(double, "oom")["terminated"]
    assert terminated["reason"] == "OOMKilled" and terminated["exitCode"] == 137
    assert any(e["reason"] == "OOMKilled" and e["type"] == "Warning" for e in events_for(double, "oom"))


def test_unschedulable(double):
    create(double, PODS, pod("too-big", "print(1)", resources={"requests": {"cpu": "64"}}))
    create(double, PODS, pod("wants-gpu", "print(1)", resources={"limits": {"nvidia.com/gpu": "1"}}))
    wait_for(lambda: events_for(double, "too-big") and events_for(double, "wants-gpu"), 5)
    for name, resource in (("too-big", "cpu"), ("wants-gpu", "nvidia.com/gpu")):
        item = get_pod(double, name)
        assert item["status"]["phase"] == "Pending" and "nodeName" not in item["spec"]
        scheduled = {c["type"]: c for c in item["status"]["conditions"]}["PodScheduled"]
        assert scheduled["status"] == "False" and scheduled["reason"] == "Unschedulable"
        event = events_for(double, name)[0]
        assert event["reason"] == "FailedScheduling" and event["type"] == "Warning"
        assert f"0/1 nodes are available: 1 Insufficient {resource}" in event["message"]
        http(double, "DELETE", f"{PODS}/{name}")
    wait_for(lambda: get_pod(double, "too-big") is None and get_pod(double, "wants-gpu") is None, 5)


def test_image_pull_backoff_and_invalid_image(double):
    create(double, PODS, pod("pull", "print(1)", image="registry.example/does-not-exist:1"))
    create(double, PODS, pod("badref", "print(1)", image="Registry.Example/UPPER::1"))
    seen = set()

    def both():
        seen.add(container_state(double, "pull").get("waiting", {}).get("reason"))
        return {"ErrImagePull", "ImagePullBackOff"} <= seen

    wait_for(both, 5)
    reasons = {(e["type"], e["reason"]) for e in events_for(double, "pull")}
    assert ("Warning", "Failed") in reasons and ("Normal", "BackOff") in reasons
    assert any("Failed to pull image" in e["message"] for e in events_for(double, "pull"))
    wait_for(lambda: container_state(double, "badref").get("waiting", {}).get("reason") == "InvalidImageName", 5)
    assert phase(double, "pull") == "Pending"
    for name in ("pull", "badref"):
        http(double, "DELETE", f"{PODS}/{name}")
    wait_for(lambda: get_pod(double, "pull") is None and get_pod(double, "badref") is None, 10)


def test_create_container_config_error_then_starts(double):
    create(
        double,
        PODS,
        pod(
            "needs-secret",
            "import os; print(os.environ['TOKEN'], os.environ['MINE'])",
            env=[
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "later", "key": "token"}}},
                {"name": "MINE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
        ),
    )
    wait_for(
        lambda: (
            container_state(double, "needs-secret").get("waiting", {}).get("reason") == "CreateContainerConfigError"
        ),
        5,
    )
    assert any(
        e["type"] == "Warning" and 'secret "later" not found' in e["message"]
        for e in events_for(double, "needs-secret")
    )
    create(
        double, "/api/v1/namespaces/default/secrets", {"metadata": {"name": "later"}, "stringData": {"token": "s3cr3t"}}
    )
    wait_for(lambda: phase(double, "needs-secret") == "Succeeded", 10)
    assert http(double, "GET", f"{PODS}/needs-secret/log", raw=True) == (200, b"s3cr3t needs-secret\n")


def test_env_volumes_and_kubeconfig(double):
    create(
        double,
        "/api/v1/namespaces/default/configmaps",
        {"metadata": {"name": "settings"}, "data": {"COLOR": "blue", "file.txt": "contents"}},
    )
    code = (
        "import json, os\n"
        "mounts = json.loads(os.environ['FLYTE_DOUBLE_MOUNTS'])\n"
        "print(os.environ['COLOR'], os.environ['HOSTNAME'], os.environ['NS'], os.environ['CPU'])\n"
        "print(open(os.path.join(mounts['/etc/settings'], 'file.txt')).read())\n"
        "print(os.path.isdir(mounts['/scratch']), os.path.exists(os.environ['KUBECONFIG']))\n"
    )
    create(
        double,
        PODS,
        {
            "metadata": {"name": "envy"},
            "spec": {
                "restartPolicy": "Never",
                "volumes": [{"name": "cfg", "configMap": {"name": "settings"}}, {"name": "tmp", "emptyDir": {}}],
                "containers": [
                    {
                        "name": "main",
                        "image": "python:3.11",
                        "command": ["python3", "-c", code],
                        "envFrom": [{"configMapRef": {"name": "settings"}}],
                        "env": [
                            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                        ],
                        "resources": {"limits": {"cpu": "2"}},
                        "volumeMounts": [
                            {"name": "cfg", "mountPath": "/etc/settings"},
                            {"name": "tmp", "mountPath": "/scratch"},
                        ],
                    }
                ],
            },
        },
    )
    wait_for(lambda: phase(double, "envy") in ("Succeeded", "Failed"), 10)
    status, body = http(double, "GET", f"{PODS}/envy/log", raw=True)
    assert body == b"blue envy default 2\ncontents\nTrue True\n", body
    assert phase(double, "envy") == "Succeeded"


def test_logs_follow_timestamps_since_and_multibyte(double):
    code = (
        "import sys, time\n"
        "out = sys.stdout.buffer\n"
        "out.write(b'one\\n'); out.flush(); time.sleep(0.4)\n"
        "out.write(b'two \\xe2\\x82'); out.flush(); time.sleep(0.3); out.write(b'\\xac\\n'); out.flush()\n"
        "time.sleep(0.4); out.write(b'three\\n'); out.flush()\n"
    )
    create(double, PODS, pod("talker", code))
    wait_for(
        lambda: "running" in container_state(double, "talker") or "terminated" in container_state(double, "talker"), 5
    )
    status, body = http(double, "GET", f"{PODS}/talker/log?follow=true&timestamps=true", raw=True)
    assert status == 200
    lines = body.split(b"\n")[:-1]
    assert [line.split(b" ", 1)[1] for line in lines] == [b"one", "two €".encode(), b"three"]
    stamps = [line.split(b" ", 1)[0].decode() for line in lines]
    # Go's RFC3339Nano, UTC: trailing zeros of the fraction trimmed, as the kubelet writes it.
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?Z", s) for s in stamps), stamps
    since = urllib.parse.quote(stamps[1])
    assert http(double, "GET", f"{PODS}/talker/log?sinceTime={since}", raw=True)[1] == "two €\nthree\n".encode()
    assert http(double, "GET", f"{PODS}/talker/log?tailLines=1", raw=True)[1] == b"three\n"
    assert http(double, "GET", f"{PODS}/talker/log?limitBytes=5", raw=True)[1] == b"one\nt"
    wait_for(lambda: phase(double, "talker") == "Succeeded", 5)


def test_deleting_pod_kills_process_group(double):
    create(
        double,
        PODS,
        pod(
            "sleeper",
            "import subprocess, sys, time\n"
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            "print('ok', flush=True); time.sleep(60)",
        ),
    )
    wait_for(lambda: len(double.live_processes()) >= 2, 10, message="parent and child processes")
    pids = double.live_processes()
    started = time.monotonic()
    status, body = http(double, "DELETE", f"{PODS}/sleeper")
    assert status == 200 and body["metadata"]["deletionTimestamp"]  # graceful: the kubelet stops it, then removes it
    wait_for(lambda: get_pod(double, "sleeper") is None, 10, message="the pod to go")
    assert time.monotonic() - started < 6
    wait_for(lambda: not set(pids) & set(double.live_processes()), 5)
    for pid in pids:  # gone, or a zombie waiting for whoever it was reparented to
        try:
            assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            pass


def test_hold_pods(double):
    double.faults.hold_pods(True)
    try:
        create(double, PODS, pod("held", "print('late')"))
        time.sleep(0.3)
        item = get_pod(double, "held")
        assert item["status"]["phase"] == "Pending" and "nodeName" not in item["spec"]
    finally:
        double.faults.hold_pods(False)
    wait_for(lambda: phase(double, "held") == "Succeeded", 10)
    status, body = http(double, "GET", "/api/v1/nodes/double-node")
    assert body["status"]["allocatable"]["cpu"] == "4"
    assert json.dumps(body)
