"""Helpers of the Kubernetes tier's tests, imported by name (``from _k8s_testkit import ...``): a module of its own,
since ``conftest`` names whichever directory's conftest pytest loaded last."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).parent
CRDS = HERE.parents[1].parent / "shared" / "k8s-crds"
BUCKET = "flyte-test"
# A real cluster instead of the double: an object-store URI its pods reach, and a kubeconfig (see conftest.py).
REAL_KUBECONFIG = os.environ.get("FLYTE_TEST_KUBECONFIG") or os.environ.get("KUBECONFIG")
REAL_CLUSTER = bool(os.environ.get("FLYTE_TEST_STORAGE") and REAL_KUBECONFIG)


def settings_for(kube, **overrides):
    if REAL_CLUSTER:
        base = {"kubeconfig": REAL_KUBECONFIG.split(os.pathsep)[0],
                "namespace": os.environ.get("FLYTE_TEST_NAMESPACE", "default"),
                "storage": f"{os.environ['FLYTE_TEST_STORAGE'].rstrip('/')}/{uuid.uuid4().hex[:8]}"}
        optional = {"context": "FLYTE_TEST_CONTEXT", "image": "FLYTE_TEST_IMAGE",
                    "storage_env_secret": "FLYTE_TEST_STORAGE_SECRET", "service_account": "FLYTE_TEST_SERVICE_ACCOUNT"}
        base.update({key: os.environ[name] for key, name in optional.items() if os.environ.get(name)})
    else:
        base = {"kubeconfig": kube.kubeconfig, "namespace": "default",
                "storage": f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}", "start_failure_grace": 1.0,
                "pending_timeout": 30.0, "watch_timeout": 5, "watch_stall_timeout": 3.0}
    base.update(overrides)
    return base


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
