"""Remote runs against the Kubernetes API server double: programs run as users run them (``python program.py``),
with outputs equal to their local runs, the failure paths, and nothing left behind.

The double (``kube_double``) is a test double of the Kubernetes API server, Job controller and kubelet: pods run as
local processes from the code bundle on a real S3-compatible server (moto). See ``conftest.py`` for running the same
tests against a real cluster.
"""

from __future__ import annotations

import pytest
from _k8s_testkit import HERE, REAL_CLUSTER, outputs_json, run_program, wait_clean

pytestmark = [pytest.mark.k8s, pytest.mark.real_cluster, pytest.mark.slow]


def _creations(kube) -> list[str]:
    return [query.partition("?")[0] for method, query in kube.queries if method == "POST"]


def run_main_example(cwd):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, str(HERE.parents[1] / "examples" / "main.py")], cwd=cwd,
                          capture_output=True, text=True, timeout=280, env=dict(os.environ))


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
@pytest.mark.parametrize("spark_runs_as", ["SparkApplication", "embedded"])
def test_readme_main_example_runs_remotely_with_the_same_outputs(config_dir, kube, tmp_path, spark_runs_as):
    """The repository's main example, examples/main.py, unchanged: the config in its working directory says remote,
    so flyte.run goes to the cluster. Its Spark calls run as SparkApplications (the fake Spark operator), or, with
    ``plugin_resources: embedded``, as Jobs whose pods run Spark embedded. Without a config it runs here."""
    import ast

    import yaml

    if spark_runs_as == "embedded":
        config = yaml.safe_load((config_dir / "config.yaml").read_text())
        config["kubernetes"]["plugin_resources"] = "embedded"
        (config_dir / "config.yaml").write_text(yaml.safe_dump(config))
    created_before = 0 if REAL_CLUSTER else len(_creations(kube))
    remote = run_main_example(config_dir)
    assert remote.returncode == 0, remote.stderr[-5000:]
    if not REAL_CLUSTER:  # it did run there: the driver's Job and one object per Spark call
        kinds = [path.rsplit("/", 1)[1] for path in _creations(kube)[created_before:]]
        assert kinds.count("jobs") == (5 if spark_runs_as == "embedded" else 1), kinds
        assert kinds.count("sparkapplications") == (0 if spark_runs_as == "embedded" else 4), kinds
    elsewhere = tmp_path / "no-config"
    elsewhere.mkdir()
    local = run_main_example(elsewhere)
    assert "[a1 " not in local.stderr  # no pod log lines: it did run here
    assert local.returncode == 0, local.stderr[-5000:]

    def printed(result) -> dict:
        return ast.literal_eval(next(line for line in result.stdout.splitlines() if line.startswith("{")))

    assert printed(remote) == printed(local) == {"small": {"count": 1000, "executor_instances": "2"},
                                                 "big": {"count": 1000, "executor_instances": "8"}}
    if not REAL_CLUSTER:
        assert wait_clean(kube) == []
