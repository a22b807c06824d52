"""What the Kubernetes tier would create, without a cluster: names, labels, the Job of a plain task, secrets by
reference only, settings validation, and ``flyte run --dry-run``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import flyte
import flyte.kubernetes
from flyte._k8s import names
from flyte._k8s.settings import KubernetesSettings, parse

pytestmark = pytest.mark.k8s
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
PROGRAMS = Path(__file__).parent / "programs"


@pytest.mark.parametrize("run", ["r0123456789", "My_Run.Name!", "9starts-with-digit", "x" * 200, "a--b", "ünïcode"])
def test_object_names_are_dns_1035_deterministic_and_within_the_limit(run):
    name = names.object_name(run, "a1-2-3", 1)
    assert DNS_1035.match(name) and len(name) <= 63
    assert names.object_name(run, "a1-2-3", 1) == name  # deterministic: what adoption relies on
    assert names.object_name(run, "a1-2-3", 2) != name


def test_names_that_are_cut_do_not_collide():
    a = names.object_name("x" * 80 + "a", "a1", 1)
    b = names.object_name("x" * 80 + "b", "a1", 1)
    assert a != b and len(a) == len(b) <= 63
    assert names.dns1035("short-name") == "short-name"  # a valid name is left as it is


def test_label_values_are_valid():
    for text in ["env.task", "x" * 100, "-bad-", "sp ace"]:
        value = names.label_value(text)
        assert len(value) <= 63 and re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", value), value


def test_settings_are_validated_naming_the_key_and_what_is_allowed():
    with pytest.raises(ValueError, match=r"kubernetes\.namespace: 'Bad_NS'"):
        KubernetesSettings(namespace="Bad_NS")
    with pytest.raises(ValueError, match=r"kubernetes\.storage: 'ftp://x'; allowed: .*s3://"):
        KubernetesSettings(storage="ftp://x")
    with pytest.raises(ValueError, match=r"allowed keys: .*namespace"):
        parse({"namespce": "x"})
    with pytest.raises(flyte.errors.InitializationError, match="namespace"):
        flyte.init(kubernetes={"namespace": "NO"})


def test_remote_mode_without_a_cluster_is_a_clear_error():
    with pytest.raises(ValueError, match=r"mode='remote' needs a cluster.*kubernetes"):
        flyte.with_runcontext(mode="remote")


env = flyte.TaskEnvironment(
    name="manifests",
    image="ghcr.io/acme/app:1.0",
    resources=flyte.Resources(cpu=("1", "2"), memory="1Gi", gpu=1, shm="auto"),
    secrets=[flyte.Secret(key="token", group="api-creds"), flyte.Secret(key="ssh", mount="/etc/flyte/secrets")],
    env_vars={"MODE": "fast"},
    pod_template=flyte.PodTemplate(pod_spec={"containers": [{"name": "primary"}, {"name": "sidecar", "image": "busybox"}],
                                             "nodeSelector": {"pool": "gpu"}}, labels={"team": "ml"}),
)


@env.task
async def work(x: int) -> int:
    return x


def test_job_of_a_plain_task(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value")
    flyte.init(kubernetes={"namespace": "ml", "storage": "s3://b/p", "service_account": "runner",
                           "image_pull_secrets": ["regcred"], "labels": {"cost-center": "42"},
                           "storage_env_secret": "s3-creds"})
    try:
        [job] = flyte.kubernetes.dry_run(work, 3)
    finally:
        from flyte import _initialize

        _initialize._current = None
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert job["metadata"]["namespace"] == "ml"
    labels = job["metadata"]["labels"]
    assert labels["flyte.org/root"] == "true" and labels["cost-center"] == "42"
    assert labels["app.kubernetes.io/managed-by"] == "flyte-sdk"
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and spec["ttlSecondsAfterFinished"] == 3600
    pod = spec["template"]["spec"]
    assert spec["template"]["metadata"]["labels"]["team"] == "ml"
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "runner"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}] and pod["nodeSelector"] == {"pool": "gpu"}
    primary, sidecar = pod["containers"]
    assert sidecar == {"name": "sidecar", "image": "busybox"}
    assert primary["image"] == "ghcr.io/acme/app:1.0"
    assert primary["command"] == ["python", "-m", "flyte.runtime"]
    assert primary["resources"] == {"requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"},
                                    "limits": {"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": "1"}}
    env_vars = {e["name"]: e for e in primary["env"]}
    assert env_vars["MODE"]["value"] == "fast"
    assert env_vars["API_CREDS_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "api-creds", "key": "token"}}
    assert primary["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    mounts = {m["mountPath"]: m for m in primary["volumeMounts"]}
    assert "/etc/flyte/secrets/ssh" in mounts and "/dev/shm" in mounts
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
    # Secrets (and the store's credentials) are references, never values.
    assert "very-secret-value" not in json.dumps(job)


def test_dry_run_cli_prints_the_job_without_a_cluster_or_config(tmp_path):
    result = subprocess.run([sys.executable, "-m", "flyte", "run", "--dry-run", str(PROGRAMS / "nested.py"), "main",
                             "--n", "3"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert [d["kind"] for d in documents] == ["Job"]
    assert result.stdout.startswith("# No kubernetes settings configured")
    container = documents[0]["spec"]["template"]["spec"]["containers"][0]
    assert "--pickled-task" in container["args"] and container["resources"]["requests"]["cpu"] == "100m"


def test_dry_run_rejects_bad_arguments(tmp_path):
    result = subprocess.run([sys.executable, "-m", "flyte", "run", "--dry-run", str(PROGRAMS / "nested.py"), "main",
                             "--n", "three"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "three" in result.stderr


async def test_a_watch_whose_server_is_unreachable_backs_off(tmp_path):
    """A pod whose API server went away must not spin: the watch retries with growing pauses."""
    import asyncio
    import socket

    from flyte._k8s.client import Kube
    from flyte._k8s.informer import Informer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
              "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
              "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
              "users": [{"name": "u", "user": {"token": "t"}}]}
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
    kube = await Kube.connect(KubernetesSettings(kubeconfig=str(tmp_path / "kubeconfig")))
    informer = Informer(kube, "/api/v1/namespaces/default/pods", "a=b")

    async def listed() -> None:  # as if the list had worked before the server went away
        informer._version = "1"

    informer._list = listed
    informer.start()
    try:
        await asyncio.sleep(2.0)
    finally:
        await informer.stop()
        await kube.close()
    # Each failed watch waits longer (0.2 s, 0.4 s, ...): a handful of tries in 2 s, not thousands.
    assert 1 <= informer.resumes <= 8


async def test_each_task_object_is_pickled_as_itself_even_when_ids_are_reused(tmp_path):
    """A call's ``override()`` copy is freed once the call ends, and CPython soon hands its id to the next one: the
    session once cached pickles by bare id and ran the earlier task with the later call's inputs."""
    import gc
    import types

    import cloudpickle

    from flyte._k8s.session import RemoteSession

    env = flyte.TaskEnvironment(name="ids")

    @env.task
    async def first(n: int) -> int:
        return n

    @env.task
    async def second() -> int:
        return 0

    run = types.SimpleNamespace(name="r-ids", scratch={})
    session = RemoteSession(KubernetesSettings(storage=f"file://{tmp_path}"), run, kube=None)
    for _ in range(50):  # copies made and dropped in turn, as a driver's sequential override() calls do
        for task in (first, second):
            copy = task.override(retries=1)
            uri = await session.staging.task_uri(copy)
            name = cloudpickle.loads(Path(uri.removeprefix("file://")).read_bytes()).name
            assert name == task.name
            del copy
            gc.collect()


def test_remote_setting_holds_for_a_launcher_in_a_pod_but_not_for_the_runs_own_pods(monkeypatch):
    """``remote: true`` sends ``flyte.run`` to the cluster, also from the user's own launcher running in a pod
    (``in_cluster: true``); only inside a pod the tier started (its settings in the environment) is a new
    ``flyte.run`` local unless asked."""
    from flyte import _initialize
    from flyte._k8s.settings import SETTINGS_ENV
    from flyte._runner import _RunCall

    monkeypatch.delenv(SETTINGS_ENV, raising=False)
    flyte.init(kubernetes={"in_cluster": True, "remote": True, "storage": "s3://bucket/flyte"})
    try:
        assert _RunCall(None)._resolved().mode == "remote"
        monkeypatch.setenv(SETTINGS_ENV, _initialize.initialized().kubernetes.to_env())
        assert _RunCall(None)._resolved().mode == "local"
    finally:
        _initialize._current = None
    monkeypatch.delenv(SETTINGS_ENV)
    assert _RunCall(None)._resolved().mode == "local"  # nothing configured


plain_env = flyte.TaskEnvironment(name="plain")
built_env = flyte.TaskEnvironment(name="built", image=flyte.Image.from_debian_base(name="ml").with_pip_packages("numpy"))
named_env = flyte.TaskEnvironment(name="named", image="trainer")


@plain_env.task
async def plain(x: int) -> int:
    return x


@built_env.task
async def built(x: int) -> int:
    return x


@named_env.task
async def named(x: int) -> int:
    return x


def _image(task, **init) -> str:
    from flyte import _initialize

    flyte.init(kubernetes={"storage": "s3://b/p", **init.pop("kubernetes", {})}, **init)
    try:
        [job] = flyte.kubernetes.dry_run(task, 1)
    finally:
        _initialize._current = None
    return job["spec"]["template"]["spec"]["containers"][0]["image"]


def test_the_image_a_pod_runs():
    assert _image(plain, kubernetes={"image": "registry.example/flyte:1"}) == "registry.example/flyte:1"
    assert _image(plain, images=["registry.example/base:2"]) == "registry.example/base:2"  # flyte-sdk's default
    assert _image(plain, images=["registry.example/base:2"], kubernetes={"image": "r/k:1"}) == "r/k:1"
    assert _image(plain) == flyte.Image.from_debian_base().uri
    assert _image(built) == built_env.image.uri and _image(built) != _image(plain)
    assert _image(named, images={"trainer": "registry.example/trainer:3"}) == "registry.example/trainer:3"
    assert _image(named) == "trainer"
