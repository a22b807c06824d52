"""The remote controller's supervision against the Kubernetes API server double (a test double of the API server,
Job controller and kubelet; see ``kube_double``): cancellation and timeouts leave no object and no process, watches
survive dropped, stalled and compacted streams and throttling, a crashed controller's objects are adopted, and
``flyte gc`` collects what dead runs left."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import cloudpickle
import pytest
from _k8s_testkit import managed_objects, settings_for, wait_clean

import flyte
import flyte.kubernetes

# The tasks below travel to the pods by value, as a script's do: the pods never import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.k8s, pytest.mark.slow,
              pytest.mark.skipif(__import__("_k8s_testkit").REAL_CLUSTER, reason="drives the double's fault injection")]

env = flyte.TaskEnvironment(name="lifecycle")


@env.task
async def echo(x: int) -> int:
    return x + 1


@env.task
async def sleepy(seconds: float) -> str:
    import time as _time

    print("sleeping", flush=True)
    _time.sleep(seconds)
    return "woke"


@env.task(timeout=3)
async def too_slow(seconds: float) -> str:
    import time as _time

    _time.sleep(seconds)
    return "late"


def _remote():
    return flyte.with_runcontext(mode="remote")


def _wait_for_running_pod(kube, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any((p.get("status") or {}).get("phase") == "Running" for p in kube.objects("pods", "default")):
            return
        time.sleep(0.1)
    raise AssertionError("no pod reached Running")


async def test_cancelled_run_deletes_its_objects_and_kills_the_pod(k8s_settings, kube):
    run = asyncio.ensure_future(_remote().run.aio(sleepy, seconds=120))
    await asyncio.to_thread(_wait_for_running_pod, kube)
    assert managed_objects(kube)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert wait_clean(kube, timeout=5) == []


async def test_a_second_cancel_does_not_cut_the_deletion_short(k8s_settings, kube):
    """Interrupting twice (a notebook's stop button pressed again, ``asyncio.wait_for`` around a cancelled task)
    still ends only once the call's objects are gone: the deletion is shielded from native cancellation too."""
    run = asyncio.ensure_future(_remote().run.aio(sleepy, seconds=120))
    await asyncio.to_thread(_wait_for_running_pod, kube)
    run.cancel()
    for _ in range(3):
        await asyncio.sleep(0)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert managed_objects(kube) == []  # at once: the run waited until they were gone
    assert wait_clean(kube, timeout=5) == []


async def test_timeout_deletes_the_attempt_and_raises_max_runtime_exceeded(k8s_settings, kube):
    with pytest.raises(flyte.errors.MaxRuntimeExceededError):
        await _remote().run.aio(too_slow, seconds=120)
    assert wait_clean(kube, timeout=5) == []


@pytest.mark.parametrize("fault", ["drop", "stall", "throttle", "fail500", "fail503"])
def test_watch_and_api_faults_do_not_change_the_outcome(k8s_settings, kube, fault):
    async def scenario():
        if fault == "drop":
            kube.faults.drop_watches(n=2)  # both first streams (Jobs, pods) are cut as they open
        elif fault == "stall":
            kube.faults.stall_watches(n=2, seconds=30)
        elif fault == "throttle":
            kube.faults.throttle(n=3, retry_after=1)
        elif fault.startswith("fail"):
            kube.faults.fail(n=3, status=int(fault[4:]))
        run = asyncio.ensure_future(_remote().run.aio(sleepy, seconds=3))
        return await asyncio.wait_for(run, 90)

    try:
        result = asyncio.run(scenario())
        assert kube.faults.pending() == 0, "the run ended before meeting every armed fault"
    finally:
        kube.faults.clear()
    assert result.outputs()[0] == "woke"
    assert wait_clean(kube) == []


def test_a_watch_resuming_from_a_compacted_version_lists_again(kube):
    """The run's watches see nothing (stalled streams) while writes happen and are compacted away; when they resume
    from their old version they get 410 and must list again to see the call end."""
    from flyte import _initialize

    flyte.init(kubernetes=settings_for(kube, watch_stall_timeout=6.0))

    def jobs_watch_started(since: int) -> bool:
        return any("/jobs?" in q and "watch=" in q for _, q in kube.queries[since:])

    async def scenario():
        kube.faults.stall_watches(n=2, seconds=30)
        kube.faults.hold_pods(True)
        start = len(kube.queries)
        run = asyncio.ensure_future(_remote().run.aio(sleepy, seconds=1))
        deadline = time.monotonic() + 30
        while not jobs_watch_started(start) or not kube.objects("pods", "default"):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        # A write after the watches' list, then compaction: their version is gone.
        note = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "compaction-marker"}}
        await asyncio.to_thread(subprocess.run, ["kubectl", "--kubeconfig", kube.kubeconfig, "apply", "-f", "-"],
                                input=json.dumps(note), capture_output=True, text=True, check=True)
        marks["compacted"] = len(kube.queries)
        kube.faults.compact()
        kube.faults.hold_pods(False)
        return await asyncio.wait_for(run, 90)

    marks: dict[str, int] = {}
    try:
        result = asyncio.run(scenario())
    finally:
        kube.faults.clear()
        subprocess.run(["kubectl", "--kubeconfig", kube.kubeconfig, "delete", "configmap", "compaction-marker"],
                       capture_output=True)
        _initialize._current = None
    assert result.outputs()[0] == "woke"
    after = kube.queries[marks["compacted"]:]
    assert any(m == "GET" and "/jobs?" in q and "watch=" not in q for m, q in after), \
        [(m, q.partition("?")[2][:120]) for m, q in after if "/jobs" in q]
    assert wait_clean(kube) == []


async def test_crashed_controllers_job_is_adopted(k8s_settings, kube):
    """A Job of this call already exists (a controller that died after creating it): the new controller adopts it
    instead of failing on 409, and reads its outputs."""
    from flyte._k8s.resources import JobResource
    from flyte._k8s.session import build_call
    from flyte._k8s.settings import current
    from flyte._run import Action

    settings = current()
    run_prefix = f"{settings.storage_uri}/runs/adopted"

    class _Run:
        name = "adopted"
        raw_data_path = f"{run_prefix}/data"

        class options:  # noqa: N801
            env_vars: dict = {}

    from flyte._bundle import build_bundle
    from flyte._staging import bundle_location, task_location

    # The same call the run will make: same task, same bundle, same names.
    task_uri = task_location(run_prefix, cloudpickle.dumps(echo))
    bundle = build_bundle()
    bundle_uri = bundle_location(settings.storage_uri, bundle.digest) if bundle else None
    call, _ = build_call(settings, _Run, echo, Action("a1", echo.name, None), 1, JobResource(), task_uri=task_uri,
                         bundle_uri=bundle_uri, owner_references=[], root=True, run_prefix=run_prefix)
    kube.faults.hold_pods(True)
    try:
        manifest = JobResource().build(call)
        created = subprocess.run(["kubectl", "--kubeconfig", kube.kubeconfig, "create", "-f", "-"],
                                 input=json.dumps(manifest), capture_output=True, text=True)
        assert created.returncode == 0, created.stderr
        run = asyncio.ensure_future(flyte.with_runcontext(mode="remote", name="adopted").run.aio(echo, x=41))
        await asyncio.sleep(2)
        kube.faults.hold_pods(False)
        result = await asyncio.wait_for(run, 60)
    finally:
        kube.faults.hold_pods(False)
    assert result.outputs()[0] == 42
    assert wait_clean(kube) == []


async def test_gc_deletes_objects_of_runs_that_no_longer_exist(k8s_settings, kube, tmp_path):
    def labels_of(run: str, root: bool) -> dict:
        labels = {"app.kubernetes.io/managed-by": "flyte-sdk", "flyte.org/run": run}
        if root:
            labels["flyte.org/root"] = "true"
        return labels

    def pod_spec(command: str) -> dict:
        return {"restartPolicy": "Never", "containers": [{"name": "primary", "image": "python:3.11",
                                                          "command": ["python", "-c", command]}]}

    def job(name: str, run: str, root: bool, command: str) -> dict:
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "labels": labels_of(run, root)},
                "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": labels_of(run, root)},
                                                         "spec": pod_spec(command)}}}

    def pod(name: str, run: str) -> dict:  # a pod whose Job was deleted with propagation Orphan
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels_of(run, False)},
                "spec": pod_spec("import time; time.sleep(60)")}

    live = [job("live-root", "live", True, "import time; time.sleep(60)"), job("live-child", "live", False, "pass"),
            pod("live-orphan", "live")]
    dead = [job("dead-child", "dead", False, "import time; time.sleep(60)"), pod("dead-orphan", "dead")]
    for manifest in live + dead:
        done = subprocess.run(["kubectl", "--kubeconfig", kube.kubeconfig, "create", "-f", "-"],
                              input=json.dumps(manifest), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    (tmp_path / "config.yaml").write_text(json.dumps({"kubernetes": k8s_settings}))

    def flyte_gc(*args: str) -> list[str]:
        done = subprocess.run([sys.executable, "-m", "flyte", "gc", "--config", str(tmp_path / "config.yaml"), *args],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    try:
        assert sorted(await asyncio.to_thread(flyte.kubernetes.gc, dry_run=True)) == ["Job/dead-child",
                                                                                      "Pod/dead-orphan"]
        assert await asyncio.to_thread(flyte_gc, "--dry-run") == [
            "would delete Job/dead-child", "would delete Pod/dead-orphan", "2 object(s) would delete"]
        assert {j["metadata"]["name"] for j in kube.objects("jobs", "default")} >= {"dead-child"}
        assert await asyncio.to_thread(flyte_gc) == ["deleted Job/dead-child", "deleted Pod/dead-orphan",
                                                     "2 object(s) deleted"]
        deadline = time.monotonic() + 10
        while {"dead-child", "dead-orphan"} & {o["metadata"]["name"] for o in
                                               kube.objects("jobs", "default") + kube.objects("pods", "default")}:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        assert {j["metadata"]["name"] for j in kube.objects("jobs", "default")} >= {"live-root", "live-child"}
        assert "live-orphan" in {p["metadata"]["name"] for p in kube.objects("pods", "default")}
    finally:
        for kind, name in (("job", "live-root"), ("job", "live-child"), ("job", "dead-child"),
                           ("pod", "live-orphan"), ("pod", "dead-orphan")):
            subprocess.run(["kubectl", "--kubeconfig", kube.kubeconfig, "delete", kind, name, "--ignore-not-found",
                            "--cascade=foreground"], capture_output=True)
    assert wait_clean(kube) == []
