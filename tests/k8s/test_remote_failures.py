"""How remote calls end when their pod does not: against the Kubernetes API server double (a test double of the API
server, Job controller and kubelet whose pods are local processes; see ``kube_double``), programs run as users run
them (``python programs/ends.py TASK``):

- a process that exits with a code or dies of a signal, leaving no error document, is named by how it ended;
- a pod that cannot start fails the call with the reason and the Events: an unparsable image name at once, a
  missing Secret after ``start_failure_grace`` (and not at all when the Secret appears within the grace);
- a ResourceQuota that refuses the Job controller's pod (no pod, a ``FailedCreate`` event on the Job) fails the call
  after the grace, not at ``pending_timeout``;
- a retry is a new attempt object (``<run>-<action>-2``, ``flyte.org/attempt=2``) and the failed attempt's is
  deleted first.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import yaml
from _k8s_testkit import HERE, run_program, wait_clean

pytestmark = [pytest.mark.k8s, pytest.mark.slow,
              pytest.mark.skipif(__import__("_k8s_testkit").REAL_CLUSTER,
                                 reason="uses the double's kubelet, quota faults and processes")]

JOBS = "/apis/batch/v1/namespaces/default/jobs"


def _configure(config_dir, **overrides) -> None:
    config = yaml.safe_load((config_dir / "config.yaml").read_text())
    config["kubernetes"].update(overrides)
    (config_dir / "config.yaml").write_text(yaml.safe_dump(config))


def _kubectl(kube, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "--kubeconfig", kube.kubeconfig, *args], input=stdin, capture_output=True,
                          text=True, timeout=60)


def _ends(config_dir, *args: str, timeout: float = 180):
    started = time.monotonic()
    result = run_program("ends.py", *args, cwd=config_dir, timeout=timeout)
    return result, time.monotonic() - started


def _waiting_reason(kube) -> str | None:
    for pod in kube.objects("pods", "default"):
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            reason = ((status.get("state") or {}).get("waiting") or {}).get("reason")
            if reason:
                return reason
    return None


def test_exit_codes_and_signals_are_named(config_dir, kube):
    exited, _ = _ends(config_dir, "exits")
    assert exited.returncode == 1, exited.stderr[-3000:]
    assert "ERROR RuntimeSystemError ExitCode3" in exited.stdout, exited.stdout + exited.stderr[-3000:]
    assert "exited with code 3 before reporting a result" in exited.stdout
    assert "exiting with 3" in exited.stdout  # the log's last lines come with the error
    killed, _ = _ends(config_dir, "killed")
    assert killed.returncode == 1, killed.stderr[-3000:]
    assert "ERROR RuntimeSystemError SIGKILL" in killed.stdout, killed.stdout + killed.stderr[-3000:]
    assert "was killed by SIGKILL (exit code 137)" in killed.stdout
    assert wait_clean(kube) == []


def test_pods_that_cannot_start_fail_with_reason_and_events_after_the_grace(config_dir, kube):
    _configure(config_dir, start_failure_grace=60)
    # An image name that cannot be parsed will never pull: the call fails at once, whatever the grace.
    bad, took = _ends(config_dir, "bad_name")
    assert "ERROR InvalidImageNameError InvalidImageName" in bad.stdout, bad.stdout + bad.stderr[-3000:]
    assert "Bad::Image" in bad.stdout and "Recent events" in bad.stdout
    assert took < 45, f"took {took:.0f}s: it waited for the grace period"
    assert wait_clean(kube) == []

    # A Secret that is missing when the pod starts, created within the grace: the pod starts and the call succeeds.
    program = subprocess.Popen([sys.executable, str(HERE / "programs" / "ends.py"), "needs_secret"], cwd=config_dir,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "late-creds"},
              "stringData": {"token": "twelve chars"}}
    try:
        deadline = time.monotonic() + 60
        while _waiting_reason(kube) != "CreateContainerConfigError":
            assert time.monotonic() < deadline and program.poll() is None, "the pod never waited for its Secret"
            time.sleep(0.1)
        assert _kubectl(kube, "apply", "-f", "-", stdin=json.dumps(secret)).returncode == 0
        out, err = program.communicate(timeout=120)
    finally:
        program.kill()
        _kubectl(kube, "delete", "secret", "late-creds", "--ignore-not-found")
    assert "RESULT token has 12 characters" in out, out + err[-3000:]
    assert wait_clean(kube) == []

    # The same Secret missing past the grace: the call fails with the reason and the pod's Events.
    _configure(config_dir, start_failure_grace=2)
    missing, _ = _ends(config_dir, "needs_secret")
    assert "ERROR RuntimeUserError CreateContainerConfigError" in missing.stdout, \
        missing.stdout + missing.stderr[-3000:]
    assert 'secret "late-creds" not found' in missing.stdout and "Recent events" in missing.stdout
    assert wait_clean(kube) == []


def test_a_quota_refusing_the_pod_fails_the_call_after_the_grace(config_dir, kube):
    """The Job is created, its controller's pod create is refused (403 exceeded quota): there is no pod, only
    FailedCreate Warning events on the Job. The call fails after the grace with the quota's words, long before
    ``pending_timeout``; a refusal that clears within the grace does not fail it."""
    _configure(config_dir, start_failure_grace=2, pending_timeout=90)
    kube.faults.reject_create("pods", n=100_000)
    try:
        refused, took = _ends(config_dir, "plain")
        assert not kube.objects("pods", "default")  # the double really refused every pod
    finally:
        kube.faults.clear()
    assert "ERROR RuntimeUserError ExceededQuota" in refused.stdout, refused.stdout + refused.stderr[-3000:]
    assert "could not create its pod" in refused.stdout and "exceeded quota: compute-resources" in refused.stdout
    assert "Warning FailedCreate" in refused.stdout  # the Job's events
    assert took < 60, f"took {took:.0f}s: it waited for pending_timeout"
    assert wait_clean(kube) == []

    _configure(config_dir, start_failure_grace=30)
    kube.faults.reject_create("pods", n=2)  # the quota frees up after two refusals
    try:
        passed, _ = _ends(config_dir, "plain")
        assert kube.faults.pending() == 0, "the pod was never refused"
    finally:
        kube.faults.clear()
    assert "RESULT 42" in passed.stdout, passed.stdout + passed.stderr[-3000:]
    assert wait_clean(kube) == []


def test_a_retry_is_a_new_job_and_the_failed_attempts_job_is_deleted_first(config_dir, kube, tmp_path):
    marker = tmp_path / "first-attempt-done"
    start = len(kube.requests)
    seen: dict[str, dict] = {}
    program = subprocess.Popen([sys.executable, str(HERE / "programs" / "ends.py"), "flaky", str(marker)],
                               cwd=config_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while program.poll() is None:  # every Job the run creates, as it exists
            for job in kube.objects("jobs", "default"):
                seen.setdefault(job["metadata"]["name"], job["metadata"]["labels"])
            time.sleep(0.05)
        out, err = program.communicate()
    finally:
        program.kill()
    assert "RESULT second attempt succeeded (attempt_number 1)" in out, out + err[-3000:]
    assert marker.read_text() == "attempt 1 failed\n"
    first, second = sorted(seen, key=lambda name: seen[name]["flyte.org/attempt"])
    assert first.endswith("-1") and second == first[:-2] + "-2", seen
    assert seen[first]["flyte.org/attempt"] == "1" and seen[second]["flyte.org/attempt"] == "2"
    assert seen[first]["flyte.org/action"] == seen[second]["flyte.org/action"]
    # The failed attempt's Job was deleted (by the SDK, not its TTL) before the retry's was created.
    requests = kube.requests[start:]
    creates = [i for i, (method, path) in enumerate(requests) if method == "POST" and path == JOBS]
    deletes = [i for i, (method, path) in enumerate(requests) if method == "DELETE" and path == f"{JOBS}/{first}"]
    assert len(creates) == 2 and deletes and creates[0] < deletes[0] < creates[1], requests
    assert wait_clean(kube) == []
