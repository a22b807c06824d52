"""Remote calls against the Kubernetes API server double (a test double of the API server, Job controller and
kubelet whose pods are local processes; see ``kube_double``): Ctrl-C and a failing sibling leave no object, secrets
travel by reference only, flyte.io values cross pods through the object store, what kubectl sees is what the SDK
made, the pending timeout, a quota refusal, names of any length, and ``flyte run --remote``."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time

import pytest
from _k8s_testkit import HERE, REAL_CLUSTER, run_program, wait_clean

pytestmark = [pytest.mark.k8s, pytest.mark.slow,
              pytest.mark.skipif(REAL_CLUSTER, reason="reads the double's objects and processes")]


def _kubectl(kube, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "--kubeconfig", kube.kubeconfig, *args], input=stdin, capture_output=True,
                          text=True, timeout=60)


def _wait_running(kube, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [p for p in kube.objects("pods", "default") if (p.get("status") or {}).get("phase") == "Running"]
        if running:
            return running
        time.sleep(0.1)
    raise AssertionError("no pod reached Running")


def test_ctrl_c_deletes_the_runs_objects_and_kills_its_pods(config_dir, kube):
    program = subprocess.Popen([sys.executable, str(HERE / "programs" / "cluster_calls.py"), "sleeper"],
                               cwd=config_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_running(kube)
        # What kubectl, an independent client, sees is what the SDK made: the run's Job with its labels.
        seen = json.loads(_kubectl(kube, "get", "jobs", "-l", "app.kubernetes.io/managed-by=flyte-sdk",
                                   "-o", "json").stdout)["items"]
        assert [job["metadata"]["labels"]["flyte.org/task"] for job in seen] == ["calls.sleeper"]
        program.send_signal(signal.SIGINT)
        out, err = program.communicate(timeout=60)
    finally:
        program.kill()
    assert program.returncode != 0
    assert wait_clean(kube, timeout=2) == [], err[-2000:]
    assert json.loads(_kubectl(kube, "get", "jobs,pods", "-o", "json").stdout)["items"] == []


def test_a_failing_sibling_deletes_the_other_childs_job(config_dir, kube):
    result = run_program("cluster_calls.py", "siblings", cwd=config_dir, timeout=120)
    assert result.returncode == 1 and "child 1 failed" in result.stdout, result.stdout + result.stderr[-2000:]
    assert wait_clean(kube, timeout=5) == []


def test_secrets_reach_the_pod_by_reference_and_never_appear_as_values(config_dir, kube):
    value = "s3cr3t-value-that-must-not-leak"
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api-creds"},
              "stringData": {"token": value}}
    assert _kubectl(kube, "apply", "-f", "-", stdin=json.dumps(secret)).returncode == 0
    seen: list[str] = []
    try:
        program = subprocess.Popen([sys.executable, str(HERE / "programs" / "cluster_calls.py"), "secret"],
                                   cwd=config_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while program.poll() is None:  # every object the run creates, as it exists
            seen += [json.dumps(item) for item in kube.objects("jobs", "default") + kube.objects("pods", "default")]
            time.sleep(0.05)
        out, err = program.communicate()
    finally:
        _kubectl(kube, "delete", "secret", "api-creds")
    assert f"RESULT {hashlib.sha256(value.encode()).hexdigest()}" in out, out + err[-2000:]
    assert seen and not any(value in text for text in seen)
    assert value not in out + err
    assert any('"secretKeyRef": {"name": "api-creds", "key": "token"}' in text for text in seen)
    assert wait_clean(kube) == []


def test_files_cross_pods_and_come_back_to_the_caller_through_the_object_store(config_dir, kube):
    result = run_program("cluster_calls.py", "files", cwd=config_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "READ hello ✓" in result.stdout and "CALLER hello ✓" in result.stdout
    assert "PATH s3://flyte-test/" in result.stdout and "/data/" in result.stdout
    assert wait_clean(kube) == []


def test_pending_timeout_and_quota_refusal(config_dir, kube):
    import yaml

    config = yaml.safe_load((config_dir / "config.yaml").read_text())
    config["kubernetes"]["pending_timeout"] = 2
    (config_dir / "config.yaml").write_text(yaml.safe_dump(config))
    kube.faults.hold_pods(True)
    try:
        pending = run_program("cluster_calls.py", "secret", cwd=config_dir, timeout=60)
    finally:
        kube.faults.hold_pods(False)
    assert "ERROR MaxQueuedTimeExceededError" in pending.stdout and "pending_timeout=2s" in pending.stdout, \
        pending.stdout + pending.stderr[-2000:]
    assert wait_clean(kube) == []
    kube.faults.reject_create("jobs", n=1, status=403, message="exceeded quota: compute, requested: cpu=1")
    refused = run_program("cluster_calls.py", "secret", cwd=config_dir, timeout=60)
    assert "ERROR RuntimeUserError" in refused.stdout and "exceeded quota" in refused.stdout, refused.stdout
    assert wait_clean(kube) == []


def test_flyte_run_remote_cli_with_a_long_run_name(config_dir, kube):
    name = "Nightly_Report." + "x" * 80
    result = subprocess.run([sys.executable, "-m", "flyte", "run", "--remote", "--name", name,
                             str(HERE / "programs" / "nested.py"), "square", "--x", "7"], cwd=config_dir,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "49"
    assert wait_clean(kube) == []


def test_log_follow_reconnects_without_losing_or_repeating_lines(config_dir, kube):
    kube.faults.drop_logs(n=2, after_lines=7)
    try:
        result = run_program("chatty.py", cwd=config_dir, timeout=120)
        assert kube.faults.pending() == 0, "the log stream was never cut"
    finally:
        kube.faults.clear()
    assert result.returncode == 0, result.stderr[-3000:]
    shown = [line.split("] ", 1)[1] for line in result.stderr.splitlines() if line.startswith("[a1 chatty.chatty] ")]
    expected = [f"line {i}" for i in range(30)]
    expected[15] = "line 15 split ✓"
    assert shown == expected
    assert wait_clean(kube) == []


def test_deleting_a_parent_job_takes_its_childrens_jobs(config_dir, kube):
    """Children are owned by their caller's pod: kubectl deleting the root Job (foreground) removes them too."""
    program = subprocess.Popen([sys.executable, str(HERE / "programs" / "cluster_calls.py"), "sleepers"],
                               cwd=config_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(kube.objects("jobs", "default")) < 3:  # the root and its two children
            assert time.monotonic() < deadline and program.poll() is None
            time.sleep(0.1)
        children = [j for j in kube.objects("jobs", "default") if "flyte.org/root" not in j["metadata"]["labels"]]
        assert all(ref["kind"] == "Pod" for j in children for ref in j["metadata"]["ownerReferences"])
        root = next(j for j in kube.objects("jobs", "default") if "flyte.org/root" in j["metadata"]["labels"])
        deleted = _kubectl(kube, "delete", "job", root["metadata"]["name"], "--cascade=foreground")
        assert deleted.returncode == 0, deleted.stderr
        out, err = program.communicate(timeout=60)
    finally:
        program.kill()
    assert program.returncode == 1 and "was deleted before it finished" in out, out + err[-2000:]
    assert wait_clean(kube, timeout=10) == []
