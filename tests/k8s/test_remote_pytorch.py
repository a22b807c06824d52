"""PyTorch tasks run remotely as Kubeflow PyTorchJobs and as Trainer v2 TrainJobs, against the Kubernetes API server
double and its fake training operator and Trainer (``kube_double.operators.pytorch`` / ``.trainer``: their pods are
local processes of this machine running the real torch.distributed). Programs run as users run them: the same
values as a real local run, node 0's log shown under the call's prefix, the user's exception kept, and nothing
left behind (no object, no pod process, no torch launcher or worker) when a call ends, fails, times out or is
interrupted."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from _k8s_testkit import HERE, REAL_CLUSTER, outputs_json, run_program, wait_clean

pytestmark = [pytest.mark.k8s, pytest.mark.torch]
remote = pytest.mark.slow
needs_double = pytest.mark.skipif(REAL_CLUSTER, reason="reads the double's objects and processes")

KINDS = ("pytorchjobs", "trainjobs")
LOG_LINE = re.compile(r"^\[(\S+) ([^\]]+)\] (.*)$")


@pytest.fixture
def config_dir(config_dir):
    """The remote config, with room for two torch nodes to start on a loaded machine."""
    return _configure(config_dir, pending_timeout=240)


def _configure(folder: Path, **settings) -> Path:
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["kubernetes"].update(settings)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def _trainjob_dir(config_dir: Path, tmp_path: Path, runtime: str = "torch-distributed") -> Path:
    folder = tmp_path / f"trainjob-{runtime}"
    folder.mkdir()
    (folder / "config.yaml").write_text((config_dir / "config.yaml").read_text())
    return _configure(folder, pytorch_resource="TrainJob", training_runtime=runtime)


def _left(kube) -> list[str]:
    left = wait_clean(kube)
    for kind in KINDS:
        left += [f"{kind}/{o['metadata']['name']}" for o in kube.objects(kind, "default")]
    return left + [f"torch/{pid}" for pid in _wait_gone(_pod_processes(kube), 30)]


def _pod_processes(kube) -> set[int]:
    """Every process started for the double's pods, the elastic launchers (in sessions of their own, outside the
    pods' process groups that ``wait_clean`` watches) and their torch workers included: they inherit the
    ``KUBECONFIG`` the fake kubelet gives a pod."""
    found = set()
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and proc.pid != os.getpid() and \
                    proc.environ().get("KUBECONFIG") == kube.kubeconfig:
                found.add(proc.pid)
        except (psutil.Error, OSError):
            continue
    return found


def _wait_gone(pids: set[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        alive = [pid for pid in pids if psutil.pid_exists(pid)
                 and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def _primary_lines(stderr: str, task: str) -> list[str]:
    """What the caller showed of the call's primary pod log (the lines under its ``[action task]`` prefix)."""
    return [m.group(3) for line in stderr.splitlines() if (m := LOG_LINE.match(line)) and m.group(2) == task]


def _rendezvous_port() -> int:
    """A free port below the ephemeral range: one from ``bind(0)`` can be handed to some other process's outgoing
    connection before both local nodes are up (the machine is busy), and the nodes then cannot meet."""
    import random

    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as handle:
            low = int(handle.read().split()[0])
    except OSError:
        low = 32768
    for port in random.sample(range(max(low - 12000, 1024), low), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


@pytest.fixture(scope="module")
def local_outputs(tmp_path_factory):
    """The program's values from a real local run: the elastic job as two local nodes meeting at one rendezvous
    endpoint (the program run twice, as torchrun is run once per node), the master/worker job as one node."""
    folder = tmp_path_factory.mktemp("local")
    env = {**os.environ, "PET_RDZV_ENDPOINT": f"127.0.0.1:{_rendezvous_port()}", "PET_RDZV_ID": "local-nodes"}
    program = str(HERE / "programs" / "torch_ranks.py")
    node_runs = [subprocess.Popen([sys.executable, program, "nodes"], cwd=folder, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [run.communicate(timeout=280) for run in node_runs]
    assert all(run.returncode == 0 for run in node_runs), "\n=====\n".join(err for _, err in results)
    fixed = run_program("torch_ranks.py", "fixed", cwd=folder, timeout=280)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    [first, second] = [outputs_json(subprocess.CompletedProcess(program, 0, out, err)) for out, err in results]
    assert first == second  # every node returns rank 0's value
    return {**first, **outputs_json(fixed)}


@remote
def test_elastic_task_runs_as_a_pytorch_job_showing_worker_0(config_dir, kube, local_outputs):
    """Elastic(nnodes=2): two Worker replicas share one template, so both pods carry the primary label; the call
    shows worker 0's log and follows its exit, and returns rank 0's value, as the local two-node run does."""
    result = run_program("torch_ranks.py", "nodes", cwd=config_dir, timeout=280)
    assert result.returncode == 0, result.stderr[-5000:]
    assert outputs_json(result) == {"nodes": local_outputs["nodes"]}
    shown = _primary_lines(result.stderr, "torch_nodes.nodes")
    printed = [line for line in shown if line.startswith("rank ")]
    assert len(printed) == 1 and re.search(r"-worker-0$", printed[0]), shown
    if not REAL_CLUSTER:
        assert _left(kube) == []


@remote
def test_pytorch_tasks_run_as_trainer_v2_train_jobs(config_dir, kube, tmp_path, local_outputs, request):
    """With ``pytorch_resource: TrainJob``: the elastic task on two node pods meeting at Trainer's PET_MASTER_ADDR/
    PORT, and the master/worker task as one process per node, its RANK/WORLD_SIZE/MASTER_* derived from Trainer's
    PET_* (rank 0 on node 0, rank 1 on node 1 only). Values as locally; node 0's log shown. With a
    ``storage_env_secret`` holding only some of the credential keys the trainer names one by one: the others are
    optional, so the node pods still start."""
    folder = _trainjob_dir(config_dir, tmp_path)
    if not REAL_CLUSTER:
        import base64

        from kube_double.testing import create, http

        keys = {name: base64.b64encode(os.environ[name].encode()).decode()
                for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        create(kube, "/api/v1/namespaces/default/secrets", {"apiVersion": "v1", "kind": "Secret",
                                                            "metadata": {"name": "store-keys"}, "data": keys})
        request.addfinalizer(lambda: http(kube, "DELETE", "/api/v1/namespaces/default/secrets/store-keys"))
        _configure(folder, storage_env_secret="store-keys")
    result = run_program("torch_ranks.py", "nodes", "fixed", cwd=folder, timeout=400)
    assert result.returncode == 0, result.stderr[-5000:]
    assert outputs_json(result) == local_outputs
    for task in ("torch_nodes.nodes", "torch_fixed.fixed"):
        shown = [line for line in _primary_lines(result.stderr, task) if line.startswith("rank ")]
        assert len(shown) == 1 and re.search(r"-node-0-0-[a-z0-9]{5}$", shown[0]), (task, shown)
        if task == "torch_fixed.fixed":  # the master's rank is node 0's, not a rank of a whole job run per node
            assert shown[0].startswith("rank 0/2 on "), shown
    if not REAL_CLUSTER:
        assert _left(kube) == []


def test_node_0_is_the_primary_pod_whatever_the_creation_order():
    """Every worker of an elastic PyTorchJob, and every node of a TrainJob, carries the primary label: node 0 is
    the call's pod even when another node is newer, and none is while node 0 is not there yet."""
    from flyte._k8s.resources import JobResource
    from flyteplugins.pytorch._k8s import PyTorchJobResource, TrainJobResource

    def pod(name: str, second: int, **labels: str) -> dict:
        return {"metadata": {"name": name, "creationTimestamp": f"2026-01-01T00:00:0{second}Z", "labels": labels}}

    workers = [pod("w-1", 2, **{"training.kubeflow.org/replica-index": "1"}),
               pod("w-0", 1, **{"training.kubeflow.org/replica-index": "0"})]
    assert JobResource().primary_pod(workers)["metadata"]["name"] == "w-1"  # the default: the newest pod
    assert PyTorchJobResource().primary_pod(workers)["metadata"]["name"] == "w-0"
    assert PyTorchJobResource().primary_pod(workers[:1]) is None
    nodes = [pod("n-0-1", 3, **{"batch.kubernetes.io/job-completion-index": "1", "jobset.sigs.k8s.io/job-index": "0"}),
             pod("n-0-0-old", 1, **{"batch.kubernetes.io/job-completion-index": "0",
                                    "jobset.sigs.k8s.io/job-index": "0"}),
             pod("n-0-0-new", 2, **{"batch.kubernetes.io/job-completion-index": "0",
                                    "jobset.sigs.k8s.io/job-index": "0"}),
             pod("n-1-0", 4, **{"batch.kubernetes.io/job-completion-index": "0", "jobset.sigs.k8s.io/job-index": "1"})]
    assert TrainJobResource().primary_pod(nodes)["metadata"]["name"] == "n-0-0-new"  # a replacement of node 0
    assert TrainJobResource().primary_pod(nodes[:1]) is None


FAIL_FAST = "torch-fail-fast"


@pytest.fixture
def fail_fast_runtime(kube):
    """A ClusterTrainingRuntime like Trainer's torch-distributed whose node Job neither restarts a failed node
    (``restartPolicy: Never``) nor replaces it (``backoffLimit: 0``): the SDK's retries make new attempts."""
    from kube_double.testing import create, http

    path = "/apis/trainer.kubeflow.org/v1alpha1/clustertrainingruntimes"
    node = {"spec": {"containers": [{"name": "node", "image": "pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime"}],
                     "restartPolicy": "Never"}}
    create(kube, path, {
        "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "ClusterTrainingRuntime",
        "metadata": {"name": FAIL_FAST, "labels": {"trainer.kubeflow.org/framework": "torch"}},
        "spec": {"mlPolicy": {"numNodes": 1, "torch": {}}, "template": {"spec": {"replicatedJobs": [{
            "name": "node", "template": {"metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step":
                                                                  "trainer"}},
                                         "spec": {"backoffLimit": 0, "template": node}}}]}}}})
    yield FAIL_FAST
    http(kube, "DELETE", f"{path}/{FAIL_FAST}")


@remote
@needs_double
def test_failed_jobs_give_the_users_exception_or_name_the_failure(config_dir, kube, tmp_path, fail_fast_runtime):
    """Rank 0 raising the user's exception while rank 1 fails on its own: the caller gets rank 0's exception, of
    the user's own class, from a PyTorchJob and from a TrainJob alike. A worker that dies before the job starts:
    the job's Failed condition, named (the master, still waiting for it, is stopped with the job)."""
    users = {"type": "ShardError", "users_class": True, "message": "rank 0 found a corrupt shard 7"}
    result = run_program("torch_failures.py", "corrupt", "lost_worker", cwd=config_dir, timeout=400)
    assert result.returncode == 0, result.stderr[-5000:]
    errors = outputs_json(result)
    assert errors["corrupt"] == users, result.stderr[-5000:]
    assert errors["lost_worker"]["type"] == "RuntimeSystemError", errors
    assert re.search(r"PyTorchJob \S+ failed: .*1 Worker replica\(s\) failed", errors["lost_worker"]["message"])
    assert _left(kube) == []

    folder = _trainjob_dir(config_dir, tmp_path, fail_fast_runtime)
    result = run_program("torch_failures.py", "corrupt", "lost_worker", cwd=folder, timeout=400)
    assert result.returncode == 0, result.stderr[-5000:]
    errors = outputs_json(result)
    assert errors["corrupt"] == users, result.stderr[-5000:]
    assert errors["lost_worker"]["type"] == "RuntimeSystemError", errors
    assert re.search(r"TrainJob \S+ failed: jobset failed due to one or more job failures",
                     errors["lost_worker"]["message"]), errors
    assert _left(kube) == []


def _start_slow(config_dir: Path, tmp_path: Path, task: str):
    """The slow program, its output in files (a pipe nobody reads could fill and block it)."""
    marker = tmp_path / f"{task}-started"
    marker.mkdir()
    out, err = tmp_path / f"{task}.out", tmp_path / f"{task}.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen([sys.executable, str(HERE / "programs" / "torch_slow.py"), task], cwd=config_dir,
                                   env={**os.environ, "SLOW_MARKER": str(marker)}, stdout=stdout, stderr=stderr,
                                   text=True)
    return process, marker, out, err


@remote
@needs_double
def test_ctrl_c_deletes_a_running_pytorch_job_and_stops_its_torch_processes(config_dir, kube, tmp_path):
    process, marker, out, err = _start_slow(config_dir, tmp_path, "slow")
    try:
        deadline = time.monotonic() + 240
        while len(list(marker.iterdir())) < 2:  # both ranks joined and are training
            assert process.poll() is None and time.monotonic() < deadline, err.read_text()[-5000:]
            time.sleep(0.2)
        seen = _pod_processes(kube)
        assert len(seen) >= 6, seen  # per node: the pod's runtime, its elastic launcher, a torch worker
        while not any(" started on " in line for line in _primary_lines(err.read_text(), "torch_slow.slow")):
            assert time.monotonic() < deadline, err.read_text()[-5000:]  # the primary pod's log reaches the caller
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    finally:
        process.kill()
    assert process.returncode != 0
    shown = [line for line in _primary_lines(err.read_text(), "torch_slow.slow") if " started on " in line]
    assert len(shown) == 1 and shown[0].endswith("-worker-0"), err.read_text()[-5000:]
    assert _left(kube) == []
    assert _wait_gone(seen, 30) == []


@remote
@needs_double
def test_a_timed_out_pytorch_call_deletes_its_pytorch_job(config_dir, kube, tmp_path):
    process, marker, out, err = _start_slow(config_dir, tmp_path, "late")
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 240
        while process.poll() is None and time.monotonic() < deadline:
            seen |= _pod_processes(kube)
            time.sleep(0.5)
        process.wait(timeout=10)
    finally:
        process.kill()
    assert "TIMED OUT" in out.read_text(), out.read_text() + err.read_text()[-5000:]
    if len(list(marker.iterdir())) == 2:  # it trained before the timeout (not sure on a busy machine)
        assert any(" started on " in line for line in _primary_lines(err.read_text(), "torch_slow.late"))
    assert _left(kube) == []
    assert _wait_gone(seen, 30) == []
