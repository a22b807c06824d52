"""Plugin tasks run remotely as their operators' custom resources, against the Kubernetes API server double and its
fake operators (a test double of the API server, kubelet and the Spark, KubeRay, Dask and Kubeflow training
operators, whose pods are local processes running the real engines; see ``kube_double``). Programs run as users run
them, with the same outputs as their local runs, and nothing is left behind."""

from __future__ import annotations

import shutil

import pytest

from conftest import HERE, REAL_CLUSTER, outputs_json, run_program, wait_clean

pytestmark = [pytest.mark.k8s, pytest.mark.slow]


@pytest.fixture
def config_dir(config_dir):
    """The remote config, with room for a cluster to come up (a Ray head and workers take a while on 2 cores)."""
    import yaml

    config = yaml.safe_load((config_dir / "config.yaml").read_text())
    config["kubernetes"]["pending_timeout"] = 240
    (config_dir / "config.yaml").write_text(yaml.safe_dump(config))
    return config_dir
FLYTE2 = HERE.parent / "flyte2" / "programs"


def _kinds(kube) -> set[str]:
    return {kind for kind in ("sparkapplications", "rayjobs", "daskjobs", "pytorchjobs")
            if any((o["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == "flyte-sdk"
                   for o in kube.objects(kind, "default"))}


def _left(kube) -> list[str]:
    left = wait_clean(kube)
    for kind in ("sparkapplications", "rayjobs", "daskjobs", "pytorchjobs"):
        left += [f"{kind}/{o['metadata']['name']}" for o in kube.objects(kind, "default")]
    return left


@pytest.mark.spark
def test_spark_tasks_run_as_spark_applications(config_dir, kube, tmp_path):
    remote = run_program("spark_main.py", cwd=config_dir, timeout=280)
    assert remote.returncode == 0, remote.stderr[-5000:]
    assert outputs_json(remote) == {"count": 1000, "executors": "8", "resized": 1000}
    if not REAL_CLUSTER:
        assert _left(kube) == []


@pytest.mark.torch
def test_elastic_pytorch_task_runs_as_a_pytorch_job(config_dir, kube, tmp_path):
    """Two workers, one process each, meeting through the operator's rendezvous: world 2, ranks 0 and 1 summed
    with x=1 each (this machine alone cannot run two nodes locally without a shared rendezvous endpoint)."""
    remote = run_program("torch_elastic.py", cwd=config_dir, timeout=280)
    assert remote.returncode == 0, remote.stderr[-5000:]
    assert outputs_json(remote) == {"sum": 3.0, "world": 2}
    if not REAL_CLUSTER:
        assert _left(kube) == []


def _published(program: str, config_dir, timeout: float = 280) -> dict:
    """Run one of flyte-sdk's published examples (tests/flyte2/programs) from the folder of the config."""
    import json
    import subprocess
    import sys

    shutil.copy(FLYTE2 / program, config_dir / program)
    result = subprocess.run([sys.executable, program], cwd=config_dir, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-5000:]
    [line] = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(line[len("RESULT "):])


@pytest.mark.ray
def test_published_ray_example_runs_as_a_ray_job(config_dir, kube):
    assert _published("ray_nested.py", config_dir) == {"out": [0, 1, 4]}
    if not REAL_CLUSTER:
        assert _left(kube) == []


@pytest.mark.dask
def test_published_dask_example_runs_as_a_dask_job(config_dir, kube):
    assert _published("dask_nested.py", config_dir)["out"] == [1, 2, 3]
    if not REAL_CLUSTER:
        assert _left(kube) == []
