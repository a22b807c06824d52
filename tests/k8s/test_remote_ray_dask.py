"""Ray and Dask tasks run remotely as RayJobs and DaskJobs against the Kubernetes API server double and its fake
KubeRay and dask-kubernetes operators (real Ray and Dask processes in the double's pods): the same values as locally,
an ``override(plugin_config=...)`` resize seen in the custom resource and by the task, the user's code reaching the
engines' workers from the code bundle on the object store, failures reaching the caller as the user's exception or
with the operator's reason, and timeouts and Ctrl-C leaving no object and no engine process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml
from _k8s_testkit import HERE, REAL_CLUSTER, outputs_json, run_program, settings_for, wait_clean

pytestmark = [pytest.mark.k8s, pytest.mark.slow,
              pytest.mark.skipif(REAL_CLUSTER, reason="reads the double's objects and processes")]

KINDS = ("rayjobs", "daskjobs")


def _config(folder: Path, kube, **overrides) -> Path:
    """A folder with a config.yaml for the double (a Ray cluster takes a while to come up on 2 loaded cores)."""
    folder.mkdir(parents=True, exist_ok=True)
    settings = settings_for(kube, remote=True, **{"pending_timeout": 240, **overrides})
    (folder / "config.yaml").write_text(yaml.safe_dump({"kubernetes": settings}))
    return folder


def _left(kube) -> list[str]:
    left = wait_clean(kube)
    for kind in KINDS:
        left += [f"{kind}/{o['metadata']['name']}" for o in kube.objects(kind, "default")]
    return left


class Watcher:
    """What the run's custom resources and engine pods looked like while it ran, as the double's store saw every
    write: each object's spec and latest status, a timeline for a failing test's message, and the scratch folder
    (``TMPDIR``) of every Ray head, which names its Ray processes."""

    KEYS = {"rayjobs": "ray.io/rayjobs", "daskjobs": "kubernetes.dask.org/daskjobs"}

    def __init__(self, kube, kind: str) -> None:
        self.kube, self.key = kube, self.KEYS[kind]
        self.specs: dict[str, dict] = {}
        self.statuses: dict[str, dict] = {}
        self.scratch: set[str] = set()
        self.ray_seen = False
        self.timeline: list[str] = []
        self._seen: dict[str, str] = {}
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll_processes, daemon=True)

    def __enter__(self) -> Watcher:
        self.kube._store.listeners.append(self._on_write)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.kube._store.listeners.remove(self._on_write)
        self._stop.set()
        self._thread.join()

    def _note(self, key: str, state: str) -> None:
        if self._seen.get(key) != state:
            self._seen[key] = state
            self.timeline.append(f"{time.monotonic() - self._started:6.1f}s {key}: {state}")

    def _on_write(self, key, type_, obj, prev) -> None:  # on the double's loop, after each write
        name = obj["metadata"]["name"]
        if key == self.key:
            self.specs[name] = obj["spec"]
            status = obj.get("status") or {}
            if status:
                self.statuses[name] = status
            self._note(name, f"{type_} {status.get('jobDeploymentStatus') or status.get('jobStatus')}")
        elif key == "/pods":
            statuses = (obj.get("status") or {}).get("containerStatuses") or [{}]
            self._note(name, f"{(obj.get('status') or {}).get('phase')} restarts={statuses[0].get('restartCount', 0)}")
            if (obj["metadata"].get("labels") or {}).get("ray.io/node-type") == "head":
                self.scratch.update(e["value"] for e in obj["spec"]["containers"][0].get("env") or []
                                    if e.get("name") == "TMPDIR")

    def _poll_processes(self) -> None:
        while not self._stop.is_set() and not self.ray_seen:
            self.ray_seen = bool(self.scratch and ray_processes(set(self.scratch)))
            time.sleep(0.3)


def ray_processes(markers) -> list[str]:
    """Ray's daemons (raylet, gcs_server, ...) and workers of the given clusters: processes naming their scratch
    folder in their command line or environment."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            text = " ".join(proc.info["cmdline"] or [])
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if any(m in text for m in markers) or proc.environ().get("TMPDIR") in markers:
                found.append(f"{proc.pid} {text[:120]}")
        except (psutil.Error, OSError):
            continue
    return found


def _json(result) -> dict:
    return json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])


def _no_ray_left(watcher: Watcher) -> list[str]:
    deadline = time.monotonic() + 30
    while (left := ray_processes(watcher.scratch)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


@pytest.mark.ray
def test_ray_tasks_run_as_ray_jobs_like_locally(kube, tmp_path):
    """A plain task calls a Ray task, the same with more workers (override), and one that raises: each a RayJob
    whose workers import the user's module from the bundle on the store (the job's working_dir)."""
    config_dir = _config(tmp_path / "remote", kube)
    with Watcher(kube, "rayjobs") as watcher:
        remote = run_program("ray_shapes.py", "main", cwd=config_dir, timeout=500)
    assert remote.returncode == 0, "\n".join(watcher.timeline) + remote.stdout[-2000:] + remote.stderr[-6000:]
    local = run_program("ray_shapes.py", "main", cwd=tmp_path, timeout=300)
    assert local.returncode == 0, local.stderr[-5000:]
    remote_out, local_out = outputs_json(remote), outputs_json(local)
    for key in ("base", "resized"):
        for field in ("squares", "shape"):
            assert remote_out[key][field] == local_out[key][field]
    assert remote_out["base"]["squares"] == [0, 1, 4, 9] and remote_out["base"]["shape"] == "square"
    assert remote_out["caught"] == local_out["caught"] == "ShapeError sides=3: no shape has 3 sides"
    # the size asked for: in the RayJob, and the nodes the task saw (the head and the workers)
    replicas = sorted(spec["rayClusterSpec"].get("workerGroupSpecs", [{}])[0].get("replicas", 0)
                      for spec in watcher.specs.values())
    assert replicas == [1, 1, 2], watcher.specs.keys()
    assert (remote_out["base"]["nodes"], remote_out["resized"]["nodes"]) == (2, 3)
    # Ray's workers imported the user's module from the job's working_dir: the bundle, fetched from the store by
    # Ray's runtime-env agent (its folder is named after the s3:// URI), not this checkout's file
    for key in ("base", "resized"):
        origin = remote_out[key]["origin"]
        assert "/working_dir_files/s3_" in origin and origin.endswith("/ray_shapes.py"), origin
    assert all(spec["runtimeEnvYAML"] and "working_dir: s3://" in spec["runtimeEnvYAML"]
               for spec in watcher.specs.values())
    # the failing task's RayJob failed as KubeRay says, and its exception reached the caller as itself
    failed = [s for s in watcher.statuses.values() if s.get("jobDeploymentStatus") == "Failed"]
    assert [s.get("reason") for s in failed] == ["AppFailed"], watcher.statuses
    assert "ray_shapes.shapes] shaping 4 on 3 nodes" in remote.stderr  # the driver's (submitter's) log
    assert _left(kube) == []
    assert watcher.ray_seen and _no_ray_left(watcher) == []


@pytest.mark.ray
def test_ray_jobs_that_cannot_run_fail_with_the_reason(kube, tmp_path):
    """A RayJob KubeRay refuses (ValidationFailed) fails the call at once with the operator's message; one whose
    head never gets a node fails after the settings' pending_timeout, naming it and the head pod's FailedScheduling
    event; nothing is left."""
    config_dir = _config(tmp_path, kube, pending_timeout=15)
    operator = kube.operators["RayJob"]
    operator.reject_next("RayJob spec is invalid: injected by the test")
    started = time.monotonic()
    rejected = run_program("ray_shapes.py", "rejected", cwd=config_dir, timeout=120)
    elapsed = time.monotonic() - started
    assert rejected.returncode == 1, rejected.stdout + rejected.stderr[-3000:]
    error = _json(rejected)
    assert error["code"] == "ValidationFailed" and "ValidationFailed: RayJob spec is invalid: injected by the test" \
        in error["message"], error
    assert elapsed < 60, elapsed  # not after pending_timeout: the status says it is over
    assert _left(kube) == []

    never = run_program("ray_shapes.py", "never_ready", cwd=config_dir, timeout=180)
    assert never.returncode == 1, never.stdout + never.stderr[-3000:]
    error = _json(never)
    assert error["error"] == "MaxQueuedTimeExceededError", error
    assert "RayJob" in error["message"] and "pending_timeout=15s" in error["message"], error
    assert "FailedScheduling" in error["message"], error  # the head pod's own events say why
    assert _left(kube) == []


def _start(program: str, scenario: str, folder: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE / "programs" / program), scenario], cwd=folder,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.ray
def test_ctrl_c_deletes_a_running_ray_job_and_its_cluster(kube, tmp_path):
    config_dir = _config(tmp_path, kube)
    with Watcher(kube, "rayjobs") as watcher:
        program = _start("ray_shapes.py", "slow", config_dir)
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                if any(s.get("jobStatus") == "RUNNING" for s in watcher.statuses.values()):
                    break
                assert program.poll() is None, program.communicate()
                time.sleep(0.3)
            else:
                raise AssertionError(f"the RayJob never ran: {watcher.statuses}")
            time.sleep(3)  # the driver is in the task's body
            program.send_signal(signal.SIGINT)
            program.communicate(timeout=90)
        finally:
            program.kill()
    assert program.returncode != 0
    assert _left(kube) == []
    assert watcher.ray_seen and _no_ray_left(watcher) == []


@pytest.mark.ray
def test_a_timed_out_ray_call_deletes_its_ray_job_and_cluster(kube, tmp_path):
    config_dir = _config(tmp_path, kube)
    with Watcher(kube, "rayjobs") as watcher:
        result = run_program("ray_shapes.py", "late", cwd=config_dir, timeout=240)
    assert result.returncode == 1
    error = _json(result)
    assert error["error"] == "MaxRuntimeExceededError" and "timeout of 40s" in error["message"], error
    assert _left(kube) == []
    assert watcher.ray_seen and _no_ray_left(watcher) == []



@pytest.mark.dask
def test_dask_tasks_run_as_dask_jobs_like_locally(kube, tmp_path):
    """A plain task calls a Dask task, the same with more workers (override), and one that raises: each a DaskJob
    whose workers import the user's module (a module-level function mapped over them) from the code bundle."""
    config_dir = _config(tmp_path / "remote", kube)
    with Watcher(kube, "daskjobs") as watcher:
        remote = run_program("dask_shapes.py", cwd=config_dir, timeout=400)
    assert remote.returncode == 0, "\n".join(watcher.timeline) + remote.stdout[-2000:] + remote.stderr[-6000:]
    local = run_program("dask_shapes.py", cwd=tmp_path, timeout=300)
    assert local.returncode == 0, local.stderr[-5000:]
    remote_out, local_out = outputs_json(remote), outputs_json(local)
    for key in ("base", "resized"):
        for field in ("shifted", "workers"):
            assert remote_out[key][field] == local_out[key][field]
    assert remote_out["base"]["shifted"] == [10, 11, 12, 13]
    assert (remote_out["base"]["workers"], remote_out["resized"]["workers"]) == (1, 2)
    assert remote_out["caught"] == local_out["caught"] == "ShapeError sides=3: no shape has 3 sides"
    replicas = sorted(spec["cluster"]["spec"]["worker"]["replicas"] for spec in watcher.specs.values())
    assert replicas == [1, 1, 2], watcher.specs.keys()
    # every worker imported the user's module from the bundle the task shipped, not from this checkout
    for key, count in (("base", 1), ("resized", 2)):
        origins = remote_out[key]["origins"]
        assert len(origins) == count and all("/flyte-bundles/" in o and o.endswith("/dask_shapes.py")
                                             for o in origins), origins
        assert not any(str(HERE) in o for o in origins)
    assert sorted(s.get("jobStatus") for s in watcher.statuses.values()) == ["Failed", "Successful", "Successful"]
    assert "dask_shapes.shapes] shaping 4 on 2 workers" in remote.stderr  # the runner's log reaches the caller
    assert _left(kube) == []
