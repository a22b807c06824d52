"""The shared base of the fake operators (part of the Kubernetes API server test double).

An :class:`Operator` reconciles the objects of one custom resource kind the way controller-runtime controllers do:
a store listener queues ``(namespace, name)`` whenever an object of the kind changes or one of the pods / Jobs it
controls (a controller ownerReference naming the kind) changes, and a loop on the double's event loop runs
``reconcile`` for each queued key (``requeue_after`` schedules a later look, e.g. for readiness polls or TTLs).

What every operator shares:

* pods (and Jobs) are created through the same API path as the Job controller's pods (``Api.create``: defaulting,
  validation, ``faults.reject_create``), with a controller ownerReference to the custom resource (``controller:
  true``, ``blockOwnerDeletion: true``), so deleting the custom resource (Background or Foreground) removes its
  pods through the double's garbage collector and the fake kubelet stops their processes;
* status is written through the status subresource (``Api.update(..., subresource="status")``), so it is checked
  against the CRD's schema like a real operator's status update;
* all pods run on this machine (podIP 127.0.0.1): where a real operator hands pods a Service DNS name, these hand
  them ``127.0.0.1`` and a free port picked here (``free_port``: bind port 0, close, use it; a port could in
  principle be taken in between);
* images are ignored (the kubelet runs commands in this Python environment); the engines' CLIs are run from this
  environment (``bin_path``), and the venv's ``bin`` folder is put first on the pods' ``PATH`` (``python`` in a
  shell command then finds this environment's Python);
* each custom resource gets a scratch folder (``scratch``, under the double's temp folder, or a short one in /tmp
  for Ray's socket paths) given to its pods as ``TMPDIR``; it is removed when the custom resource goes.
"""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import socket
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone

from ..names import random_suffix
from ..store import now_rfc3339

VENV_BIN = os.path.dirname(sys.executable)


def bin_path(name: str) -> str:
    """An engine CLI of this environment (``<venv>/bin/<name>``), else whatever ``PATH`` has."""
    candidate = os.path.join(VENV_BIN, name)
    if os.path.exists(candidate):
        return candidate
    return shutil.which(name) or name


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def parse_time(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def pod_phase(pod: dict) -> str | None:
    return (pod.get("status") or {}).get("phase")


def set_env(container: dict, values: dict[str, str], override: bool = True) -> None:
    """Set env vars on a container spec (replacing same-named entries when ``override``)."""
    env = list(container.get("env") or [])
    names = {e.get("name") for e in env}
    for key, value in values.items():
        if key in names:
            if not override:
                continue
            env = [e for e in env if e.get("name") != key]
        env.append({"name": key, "value": str(value)})
    container["env"] = env


class Operator:
    """Base of the fake operators: reconcile loop, owned pods, status writes, TTLs, scratch folders."""

    key = ""  # the store key of the kind, "<group>/<plural>"
    component = "operator"  # the events' source component
    short_scratch = False

    def __init__(self, double):
        self.double = double
        self.store = double._store
        self.registry = double._registry
        self.collector = double._collector
        self.recorder = double._recorder
        self.rt = self.registry.by_key(self.key)
        self.kind = self.rt.kind
        self.queue: asyncio.Queue | None = None
        self.ttl_handles: dict[str, asyncio.TimerHandle] = {}
        self.scratch_dirs: dict[str, str] = {}
        self.state: dict[str, dict] = {}  # object uid -> operator memory (ports...)
        self.store.listeners.append(self.on_event)

    @classmethod
    def available(cls, registry) -> bool:
        try:
            registry.by_key(cls.key)
            return True
        except KeyError:
            return False

    # ----- queueing
    def on_event(self, key, type_, obj, prev):
        if self.queue is None:
            return
        meta = obj["metadata"]
        if key == self.key:
            if type_ == "DELETED":
                self.forget(obj)
                return
            self.queue.put_nowait((meta.get("namespace"), meta["name"]))
        elif key in ("/pods", "batch/jobs"):
            for ref in meta.get("ownerReferences") or []:
                if ref.get("kind") == self.kind and ref.get("controller"):
                    self.queue.put_nowait((meta.get("namespace"), ref.get("name")))

    async def run(self):
        self.queue = asyncio.Queue()
        for obj in self.store.list(self.key):
            self.queue.put_nowait((obj["metadata"].get("namespace"), obj["metadata"]["name"]))
        while True:
            first = await self.queue.get()
            keys = {first}
            while not self.queue.empty():
                keys.add(self.queue.get_nowait())
            for namespace, name in keys:
                obj = self.store.get(self.key, namespace, name)
                if obj is None:
                    continue
                try:
                    self.reconcile(obj)
                except Exception:
                    traceback.print_exc()

    def requeue_after(self, obj, seconds: float) -> None:
        namespace, name = obj["metadata"].get("namespace"), obj["metadata"]["name"]
        asyncio.get_event_loop().call_later(
            max(seconds, 0.01), lambda: self.queue is not None and self.queue.put_nowait((namespace, name))
        )

    def reconcile(self, obj: dict) -> None:
        raise NotImplementedError

    def forget(self, obj: dict) -> None:
        """The custom resource is gone: drop memory, timers, scratch; subclasses stop what they started."""
        uid = obj["metadata"]["uid"]
        handle = self.ttl_handles.pop(uid, None)
        if handle:
            handle.cancel()
        self.state.pop(uid, None)
        self.cleanup_scratch(uid)

    def shutdown(self) -> None:
        """The double stops (its kubelet has killed every pod): drop timers and scratch folders."""
        for handle in self.ttl_handles.values():
            handle.cancel()
        self.ttl_handles.clear()
        for uid in list(self.scratch_dirs):
            self.cleanup_scratch(uid)

    def cleanup_scratch(self, uid: str) -> None:
        path = self.scratch_dirs.pop(uid, None)
        if path:
            shutil.rmtree(path, ignore_errors=True)

    # ----- helpers
    def memory(self, obj) -> dict:
        return self.state.setdefault(obj["metadata"]["uid"], {})

    def scratch(self, obj) -> str:
        uid = obj["metadata"]["uid"]
        if uid not in self.scratch_dirs:
            if self.short_scratch:
                path = tempfile.mkdtemp(prefix="kd-")
            else:
                base = os.path.join(self.double._tmp, "operators")
                os.makedirs(base, exist_ok=True)
                path = tempfile.mkdtemp(prefix=f"{obj['metadata']['name'][:20]}-", dir=base)
            self.scratch_dirs[uid] = path
        return self.scratch_dirs[uid]

    def base_env(self, obj) -> dict[str, str]:
        return {"TMPDIR": self.scratch(obj), "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"}

    def owner_ref(self, obj) -> dict:
        return {
            "apiVersion": self.rt.api_version(),
            "kind": self.kind,
            "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def event(self, obj, type_, reason, message):
        self.recorder.record(obj, self.kind, self.rt.api_version(), type_, reason, message, self.component)

    def owned(self, obj, key: str = "/pods") -> list[dict]:
        uid = obj["metadata"]["uid"]
        return [
            item
            for item in self.store.list(key, obj["metadata"].get("namespace"))
            if any(r.get("uid") == uid and r.get("controller") for r in item["metadata"].get("ownerReferences") or [])
        ]

    def create_pod(self, obj, name: str, template: dict, labels: dict | None = None, annotations=None) -> dict:
        """Create a pod owned by ``obj`` from a PodTemplateSpec-like dict; raises on API errors."""
        template = copy.deepcopy(template or {})
        pod_meta = template.get("metadata") or {}
        namespace = obj["metadata"].get("namespace", "default")
        meta = {
            "name": name,
            "namespace": namespace,
            "labels": {**(pod_meta.get("labels") or {}), **(labels or {})},
            "annotations": {**(pod_meta.get("annotations") or {}), **(annotations or {})},
            "ownerReferences": [self.owner_ref(obj)],
        }
        if pod_meta.get("finalizers"):
            meta["finalizers"] = list(pod_meta["finalizers"])
        if not meta["annotations"]:
            meta.pop("annotations")
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template.get("spec") or {}}
        pod["spec"].setdefault("terminationGracePeriodSeconds", 3)
        rt = self.registry.by_key("/pods")
        fault = self.double.faults.take_create_fault(rt)
        if fault is not None:
            raise RuntimeError(f'pods "{name}" is forbidden: {fault.message}')
        created = self.double._api.create(rt, "v1", namespace, pod)
        self.event(obj, "Normal", "SuccessfulCreatePod", f"Created pod: {name}")
        return created

    def create_job(self, obj, name: str, spec: dict, labels: dict | None = None) -> dict:
        namespace = obj["metadata"].get("namespace", "default")
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(labels or {}),
                "ownerReferences": [self.owner_ref(obj)],
            },
            "spec": spec,
        }
        rt = self.registry.by_key("batch/jobs")
        created = self.double._api.create(rt, "v1", namespace, job)
        self.event(obj, "Normal", "SuccessfulCreate", f"Created Job: {name}")
        return created

    def delete_objects(self, obj, items: list[dict], key: str = "/pods", grace: int | None = None) -> None:
        rt = self.registry.by_key(key)
        for item in items:
            if item["metadata"].get("deletionTimestamp"):
                continue
            try:
                self.collector.delete(rt, item["metadata"].get("namespace"), item["metadata"]["name"], "Background", grace)
                kind = "pod" if key == "/pods" else key.rsplit("/", 1)[-1][:-1]
                self.event(obj, "Normal", "SuccessfulDelete", f"Deleted {kind}: {item['metadata']['name']}")
            except Exception:
                pass

    def log_contains(self, pod: dict, text: str) -> bool:
        """Whether the pod's running container printed ``text`` (stands in for a readiness probe)."""
        worker = self.double._kubelet.workers.get(pod["metadata"]["uid"])
        if worker is None:
            return False
        needle = text.encode()
        for instances in worker.logs.values():
            if instances and any(needle in line for _, line in instances[-1].lines):
                return True
        return False

    def current(self, obj) -> dict | None:
        current = self.store.get(self.key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if current is None or current["metadata"]["uid"] != obj["metadata"]["uid"]:
            return None
        return current

    def write_status(self, obj, status: dict) -> dict | None:
        """Replace the status through the status subresource (schema-checked); the stored object or None."""
        current = self.current(obj)
        if current is None or current.get("status") == status:
            return current
        body = copy.deepcopy(current)
        body["status"] = copy.deepcopy(status)
        meta = current["metadata"]
        try:
            return self.double._api.update(
                self.rt, self.rt.storage_version, meta.get("namespace"), meta["name"], body, subresource="status"
            )
        except Exception as exc:  # a status the CRD schema rejects is an operator bug: make it loud
            print(f"kube_double {self.kind} operator: status update of {meta['name']} rejected: {exc}",
                  file=sys.stderr)
            raise

    def delete_after(self, obj, seconds: float, since: str | None = None) -> None:
        """Delete the custom resource (Background) ``seconds`` after ``since`` (an RFC 3339 stamp), once."""
        uid = obj["metadata"]["uid"]
        if uid in self.ttl_handles:
            return
        elapsed = time.time() - parse_time(since) if since else 0.0
        namespace, name = obj["metadata"].get("namespace"), obj["metadata"]["name"]

        def expire():
            self.ttl_handles.pop(uid, None)
            current = self.store.get(self.key, namespace, name)
            if current is not None and current["metadata"]["uid"] == uid:
                try:
                    self.collector.delete(self.rt, namespace, name, "Background")
                except Exception:
                    pass

        self.ttl_handles[uid] = asyncio.get_event_loop().call_later(max(float(seconds) - elapsed, 0), expire)

    @staticmethod
    def now() -> str:
        return now_rfc3339()

    @staticmethod
    def suffix(length: int = 5) -> str:
        return random_suffix(length)
