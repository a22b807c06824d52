"""Fixtures of the Kubernetes tier's tests: the in-repo API server double (``kube_double``: a fake API server with
a Job controller and a fake kubelet that runs each pod's container as a local process), a real S3-compatible server
(moto on loopback) for the object store, and the settings that point runs at them.

Against a real cluster: set ``FLYTE_TEST_KUBECONFIG`` (and optionally ``FLYTE_TEST_NAMESPACE``) and
``FLYTE_TEST_STORAGE`` (an object-store URI the cluster's pods can reach, with the cloud's credentials in this
environment and in the pods) and run ``pytest -m k8s``: the same remote tests then run against that cluster instead
of the double (tests that need the double's fault injection are skipped).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).parent
CRDS = HERE.parents[1].parent / "shared" / "k8s-crds"
BUCKET = "flyte-test"
REAL_CLUSTER = bool(os.environ.get("FLYTE_TEST_KUBECONFIG"))


@pytest.fixture(scope="session")
def s3_endpoint():
    """A moto S3 server on loopback, and the environment (endpoint, dummy credentials) obstore reads."""
    if REAL_CLUSTER:
        yield None
        return
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT")).read()
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def kube(s3_endpoint):
    """The API server double, shared by the session (started after the S3 variables are set: its pods inherit
    its environment, as pods inherit their image's)."""
    if REAL_CLUSTER:
        yield None
        return
    from kube_double import KubeDouble

    # Pods see this environment, as they would see their image's: the SDK's commands (flyte-runtime.py, which a
    # SparkApplication runs as its main file) are on PATH there as in an image.
    os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    double = KubeDouble(crd_dir=str(CRDS) if CRDS.is_dir() else None, bookmark_interval_s=1.0)
    double.start()
    try:
        yield double
    finally:
        double.stop()


def _settings(kube, **overrides):
    if REAL_CLUSTER:
        base = {"kubeconfig": os.environ["FLYTE_TEST_KUBECONFIG"],
                "namespace": os.environ.get("FLYTE_TEST_NAMESPACE", "default"),
                "storage": f"{os.environ['FLYTE_TEST_STORAGE'].rstrip('/')}/{uuid.uuid4().hex[:8]}"}
    else:
        base = {"kubeconfig": kube.kubeconfig, "namespace": "default",
                "storage": f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}", "start_failure_grace": 1.0,
                "pending_timeout": 30.0, "watch_timeout": 5, "watch_stall_timeout": 3.0}
    base.update(overrides)
    return base


@pytest.fixture
def k8s_settings(kube):
    """Settings for this test (its own storage prefix); ``flyte.init(kubernetes=...)`` with them, undone after."""
    import flyte
    from flyte import _initialize

    settings = _settings(kube)
    flyte.init(kubernetes=settings)
    yield settings
    _initialize._current = None


@pytest.fixture
def config_dir(tmp_path, kube):
    """A folder with a config.yaml naming the cluster: a program run there with ``flyte.init_from_config()`` finds it."""
    import yaml

    settings = _settings(kube, remote=True)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"kubernetes": settings}))
    return tmp_path


def run_program(program: str, *args: str, cwd: Path, timeout: float = 240, env: dict | None = None):
    """Run a program of tests/k8s/programs as a user would: ``python program.py ...`` in ``cwd``."""
    return subprocess.run([sys.executable, str(HERE / "programs" / program), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def managed_objects(kube) -> list[str]:
    """What the tier left on the double: Jobs and pods it manages, by name."""
    left = []
    for resource in ("jobs", "pods"):
        for item in kube.objects(resource, "default"):
            if (item["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == "flyte-sdk":
                left.append(f"{resource}/{item['metadata']['name']}")
    return left


def wait_clean(kube, timeout: float = 30.0) -> list[str]:
    """Wait until no managed object and no pod process is left; what is left after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        left = managed_objects(kube) + [f"pid/{pid}" for pid in kube.live_processes()]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def outputs_json(result) -> object:
    lines = [line for line in result.stdout.splitlines() if line.startswith(("{", "[", '"'))]
    assert lines, f"no JSON output\nstdout:\n{result.stdout}\nstderr:\n{result.stderr[-3000:]}"
    return json.loads(lines[-1])
