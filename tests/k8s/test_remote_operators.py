"""Plugin tasks run remotely as their operators' custom resources, against the Kubernetes API server double and its
fake operators (a test double of the API server, kubelet and the Spark, KubeRay, Dask and Kubeflow training
operators, whose pods are local processes running the real engines; see ``kube_double``). Programs run as users run
them, with the same outputs as their local runs, and nothing is left behind."""

from __future__ import annotations

import shutil

import pytest
from _k8s_testkit import HERE, REAL_CLUSTER, outputs_json, run_program, wait_clean

pytestmark = [pytest.mark.k8s, pytest.mark.real_cluster, pytest.mark.slow]


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
    assert "[a1-2 spark_env.count]" in remote.stderr  # the driver pod's log reaches the caller
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


def _published(program: str, config_dir, timeout: float = 280) -> tuple[dict, str]:
    """Run one of flyte-sdk's published examples (tests/flyte2/programs) from the folder of the config."""
    import json
    import subprocess
    import sys

    shutil.copy(FLYTE2 / program, config_dir / program)
    result = subprocess.run([sys.executable, program], cwd=config_dir, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-5000:]
    [line] = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(line[len("RESULT "):]), result.stderr


@pytest.mark.ray
def test_published_ray_example_runs_as_a_ray_job(config_dir, kube):
    outputs, logs = _published("ray_nested.py", config_dir)
    assert outputs == {"out": [0, 1, 4]}
    assert "running ray task" in logs and "Hello from the Ray task!" in logs  # the driver's, and its child's
    if not REAL_CLUSTER:
        assert _left(kube) == []


@pytest.mark.dask
def test_published_dask_example_runs_as_a_dask_job(config_dir, kube):
    outputs, logs = _published("dask_nested.py", config_dir)
    assert outputs["out"] == [1, 2, 3]
    assert "running dask task" in logs and "Hello from the Dask task!" in logs
    if not REAL_CLUSTER:
        assert _left(kube) == []


@pytest.mark.dask
def test_ctrl_c_deletes_a_running_dask_job_and_its_cluster(config_dir, kube):
    import signal
    import subprocess
    import sys
    import time

    if REAL_CLUSTER:
        pytest.skip("reads the double's objects")
    (config_dir / "slow_dask.py").write_text(
        "import time\nimport flyte\nfrom flyteplugins.dask.task import Dask, WorkerGroup\n"
        "env = flyte.TaskEnvironment(name='slow_dask', plugin_config=Dask(workers=WorkerGroup(number_of_workers=1)))\n"
        "@env.task\ndef slow(x: int) -> int:\n    print('started', flush=True)\n    time.sleep(120)\n    return x\n"
        "if __name__ == '__main__':\n    flyte.init_from_config()\n    flyte.run(slow, x=1)\n")
    program = subprocess.Popen([sys.executable, "slow_dask.py"], cwd=config_dir, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while "started" not in "".join(p["metadata"]["name"] for p in []) and time.monotonic() < deadline:
            jobs = kube.objects("daskjobs", "default")
            if jobs and (jobs[0].get("status") or {}).get("jobStatus") == "Running":
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the DaskJob never ran")
        time.sleep(2)
        program.send_signal(signal.SIGINT)
        program.communicate(timeout=60)
    finally:
        program.kill()
    assert program.returncode != 0
    assert _left(kube) == []


@pytest.mark.dask
def test_a_timed_out_dask_call_deletes_its_dask_job(config_dir, kube):
    if REAL_CLUSTER:
        pytest.skip("reads the double's objects")
    (config_dir / "late_dask.py").write_text(
        "import time\nimport flyte\nfrom flyteplugins.dask.task import Dask, WorkerGroup\n"
        "env = flyte.TaskEnvironment(name='late_dask', plugin_config=Dask(workers=WorkerGroup(number_of_workers=1)))\n"
        "@env.task(timeout=8)\ndef late(x: int) -> int:\n    time.sleep(120)\n    return x\n"
        "if __name__ == '__main__':\n    flyte.init_from_config()\n"
        "    try:\n        flyte.run(late, x=1)\n    except flyte.errors.MaxRuntimeExceededError as exc:\n"
        "        print('TIMED OUT', exc)\n")
    result = run_program_here("late_dask.py", config_dir)
    assert "TIMED OUT" in result.stdout, result.stdout + result.stderr[-3000:]
    assert _left(kube) == []


def run_program_here(program: str, folder, timeout: float = 240):
    import subprocess
    import sys

    return subprocess.run([sys.executable, program], cwd=folder, capture_output=True, text=True, timeout=timeout)


@pytest.mark.torch
def test_master_worker_pytorch_task_runs_as_a_pytorch_job(config_dir, kube, tmp_path):
    remote = run_program("torch_master_worker.py", cwd=config_dir, timeout=280)
    assert remote.returncode == 0, remote.stderr[-5000:]
    elsewhere = tmp_path / "no-config"
    elsewhere.mkdir()
    local = run_program("torch_master_worker.py", cwd=elsewhere, timeout=280)
    assert local.returncode == 0, local.stderr[-5000:]
    # The master's (rank 0's) value, world of two, ranks 0 and 1 summed with x=1 each: as locally.
    assert outputs_json(remote) == outputs_json(local) == {"rank": 0, "sum": 3.0, "world": 2}
    if not REAL_CLUSTER:
        assert _left(kube) == []
