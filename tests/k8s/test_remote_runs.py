"""Remote runs against the Kubernetes API server double: programs run as users run them (``python program.py``),
with outputs equal to their local runs, the failure paths, and nothing left behind.

The double (``kube_double``) is a test double of the Kubernetes API server, Job controller and kubelet: pods run as
local processes from the code bundle on a real S3-compatible server (moto). See ``conftest.py`` for running the same
tests against a real cluster.
"""

from __future__ import annotations

import pytest
from _k8s_testkit import REAL_CLUSTER, outputs_json, run_program, wait_clean

pytestmark = [pytest.mark.k8s, pytest.mark.real_cluster, pytest.mark.slow]


def test_nested_gather_map_override_program_remote_equals_local(config_dir, kube):
    local = run_program("nested.py", "local", cwd=config_dir)
    assert local.returncode == 0, local.stderr[-3000:]
    remote = run_program("nested.py", "remote", cwd=config_dir)
    assert remote.returncode == 0, remote.stderr[-5000:]
    assert outputs_json(remote) == outputs_json(local) == {
        "gathered": [0, 1, 4], "mapped": [0, 1, 4], "overridden": "hello", "total": 6}
    # The pods' logs reach the caller (a child's through its parent's pod), multi-byte characters intact.
    assert "squaring 2 ✓" in remote.stderr
    if not REAL_CLUSTER:
        assert wait_clean(kube) == []


def test_script_without_main_guard_runs_remotely_once(config_dir, kube):
    result = run_program("no_guard.py", cwd=config_dir)
    assert result.returncode == 0, result.stderr[-5000:]
    assert result.stdout.count("RESULT") == 1 and "RESULT 41" in result.stdout
    if not REAL_CLUSTER:
        assert wait_clean(kube) == []


def test_user_exception_keeps_its_type_and_attributes(config_dir, kube):
    result = run_program("failures.py", "raises", cwd=config_dir)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "ERROR BudgetError" in result.stdout and "RuntimeUserError" in result.stdout
    assert "BUDGET 3" in result.stdout and "over budget by 3" in result.stdout
    caught = run_program("failures.py", "catches", cwd=config_dir)
    assert "RESULT caught BudgetError budget=3" in caught.stdout, caught.stderr[-3000:]
    if not REAL_CLUSTER:
        assert wait_clean(kube) == []


@pytest.mark.skipif(REAL_CLUSTER, reason="the double's kubelet enforces the limit; a real one may differ in timing")
def test_oom_killed_pod_is_an_oom_error(config_dir, kube):
    result = run_program("failures.py", "hog", cwd=config_dir)
    assert result.returncode == 1
    assert "ERROR OOMError" in result.stdout, result.stdout + result.stderr[-3000:]
    assert "100Mi" in result.stdout
    assert wait_clean(kube) == []


@pytest.mark.skipif(REAL_CLUSTER, reason="uses the double's image and capacity rules")
@pytest.mark.parametrize("task, error, words", [
    ("pull", "ImagePullBackOffError", ["does-not-exist", "Recent events"]),
    ("unschedulable", "RuntimeUserError", ["Unschedulable", "Insufficient cpu"]),
])
def test_pod_that_cannot_start_fails_with_reason_and_events(config_dir, kube, task, error, words):
    result = run_program("failures.py", task, cwd=config_dir)
    assert result.returncode == 1
    assert f"ERROR {error}" in result.stdout, result.stdout + result.stderr[-3000:]
    for word in words:
        assert word in result.stdout, result.stdout
    assert wait_clean(kube) == []


@pytest.mark.spark
def test_readme_main_example_runs_remotely_with_the_same_outputs(config_dir, kube, tmp_path):
    """The seed program, unchanged: the config says remote, so flyte.run goes to the cluster; with
    ``plugin_resources: embedded`` each Spark call is a Job whose pod runs Spark embedded (no Spark operator)."""
    import yaml

    config = yaml.safe_load((config_dir / "config.yaml").read_text())
    config["kubernetes"]["plugin_resources"] = "embedded"
    (config_dir / "config.yaml").write_text(yaml.safe_dump(config))
    remote = run_program("spark_main.py", cwd=config_dir, timeout=280)
    assert remote.returncode == 0, remote.stderr[-5000:]
    elsewhere = tmp_path / "no-config"
    elsewhere.mkdir()
    local = run_program("spark_main.py", cwd=elsewhere, timeout=280)  # no config there: a local run
    assert "[a1 " not in local.stderr  # no pod log lines: it did run here
    assert local.returncode == 0, local.stderr[-5000:]
    assert outputs_json(remote) == outputs_json(local) == {"count": 1000, "executors": "8", "resized": 1000}
    if not REAL_CLUSTER:
        assert wait_clean(kube) == []
