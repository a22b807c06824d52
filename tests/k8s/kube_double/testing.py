"""Helpers for tests that use the Kubernetes API server test double: run kubectl against it, wait for a condition."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time

KUBECTL = "/usr/bin/kubectl"


def kubectl_env(double) -> dict:
    env = dict(os.environ)
    env["KUBECONFIG"] = double.kubeconfig
    env["KUBECACHEDIR"] = os.path.join(os.path.dirname(double.kubeconfig), "kubectl-cache")
    env.pop("HTTPS_PROXY", None)
    env.pop("HTTP_PROXY", None)
    env["NO_PROXY"] = "127.0.0.1"
    return env


def kubectl(double, *args, input: str | None = None, timeout: float = 30, check: bool = True):
    result = subprocess.run(
        [KUBECTL, *args], env=kubectl_env(double), input=input, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


async def async_wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)


def pod_phase(double, name_prefix: str, namespace: str = "default"):
    for pod in double.objects("pods", namespace):
        if pod["metadata"]["name"].startswith(name_prefix):
            return (pod.get("status") or {}).get("phase")
    return None


def job_manifest(name: str, code: str, restart: str = "Never", backoff: int = 0, **spec) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff,
            **spec,
            "template": {
                "spec": {
                    "restartPolicy": restart,
                    "containers": [{"name": "main", "image": "python:3.11", "command": ["python", "-c", code]}],
                }
            },
        },
    }


def http(
    double,
    method: str,
    path: str,
    body=None,
    content_type: str = "application/json",
    raw: bool = False,
    timeout: float = 30,
):
    """A plain synchronous HTTP call to the double (never through a proxy); returns (status, json or bytes)."""
    import json
    import urllib.error
    import urllib.request

    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        double.url + path,
        data=data,
        method=method,
        headers={"Content-Type": content_type, "Authorization": f"Bearer {double.token}"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            payload = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        status = exc.code
    if raw:
        return status, payload
    return status, json.loads(payload) if payload else None


def create(double, path: str, body: dict) -> dict:
    status, reply = http(double, "POST", path, body)
    if status != 201:
        raise AssertionError(f"create failed: {status} {reply}")
    return reply


def pod(name: str, code: str, restart: str = "Never", **container) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "main", "image": "python:3.11", "command": ["python", "-c", code], **container}],
        },
    }


def get_pod(double, name: str, namespace: str = "default") -> dict | None:
    for item in double.objects("pods", namespace):
        if item["metadata"]["name"] == name:
            return item
    return None


def container_state(double, name: str) -> dict:
    item = get_pod(double, name) or {}
    statuses = (item.get("status") or {}).get("containerStatuses") or [{}]
    return statuses[0].get("state") or {}


def events_for(double, name: str, namespace: str = "default") -> list[dict]:
    return [e for e in double.objects("events", namespace) if e["involvedObject"]["name"] == name]
