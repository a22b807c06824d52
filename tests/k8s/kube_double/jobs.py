"""The batch/v1 Job controller (part of the Kubernetes API server test double).

Follows the documented Job behaviour: pods named ``<job>-<5 random chars>`` from ``spec.template`` with the labels
``batch.kubernetes.io/job-name``, ``job-name``, ``controller-uid``, ``batch.kubernetes.io/controller-uid`` and a
controller ownerReference (``controller: true``, ``blockOwnerDeletion: true``); ``parallelism``/``completions``
(NonIndexed); ``backoffLimit`` counting failed pods (pods restarted in place under OnFailure do not count);
``activeDeadlineSeconds`` (active pods deleted, reason DeadlineExceeded); status ``active``, ``ready``,
``succeeded``, ``failed``, ``terminating``, ``startTime``, ``completionTime`` and the conditions of recent Kubernetes
versions (``SuccessCriteriaMet`` then ``Complete``; ``FailureTarget`` then ``Failed``); events SuccessfulCreate,
SuccessfulDelete, Completed, BackoffLimitExceeded, DeadlineExceeded; ``ttlSecondsAfterFinished`` deletes the
finished Job (Background propagation) after that many seconds.

Simplifications: ``suspend``, Indexed completion mode, podFailurePolicy and successPolicy are ignored; the
retry back-off between failed pods is short (0.1 s doubling, at most 1 s) instead of 10 s doubling; failed/succeeded
pods are counted by uid in memory instead of with the ``batch.kubernetes.io/job-tracking`` finalizer.
"""

from __future__ import annotations

import asyncio
import copy
import time
from datetime import datetime, timezone

from .names import random_suffix
from .selectors import label_selector_object_match
from .store import now_rfc3339

JOB_KEY = "batch/jobs"


def _parse(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


class JobController:
    def __init__(self, double, store, collector, recorder, registry):
        self.double = double
        self.store = store
        self.collector = collector
        self.recorder = recorder
        self.registry = registry
        self.queue: asyncio.Queue | None = None
        self.counted: dict[str, dict[str, str]] = {}  # job uid -> pod uid -> "succeeded" | "failed"
        self.last_failure: dict[str, float] = {}
        self.ttl_handles: dict[str, asyncio.TimerHandle] = {}
        store.listeners.append(self.on_event)

    def on_event(self, key, type_, obj, prev):
        if self.queue is None:
            return
        if key == JOB_KEY:
            if type_ == "DELETED":
                handle = self.ttl_handles.pop(obj["metadata"]["uid"], None)
                if handle:
                    handle.cancel()
                return
            self.queue.put_nowait((obj["metadata"].get("namespace"), obj["metadata"]["name"]))
        elif key == "/pods":
            for ref in obj["metadata"].get("ownerReferences") or []:
                if ref.get("kind") == "Job" and ref.get("controller"):
                    self.queue.put_nowait((obj["metadata"].get("namespace"), ref.get("name")))

    async def run(self):
        self.queue = asyncio.Queue()
        for job in self.store.list(JOB_KEY):
            self.queue.put_nowait((job["metadata"].get("namespace"), job["metadata"]["name"]))
        while True:
            first = await self.queue.get()
            keys = {first}
            while not self.queue.empty():
                keys.add(self.queue.get_nowait())
            for namespace, name in keys:
                try:
                    self.reconcile(namespace, name)
                except Exception:
                    import traceback

                    traceback.print_exc()

    def requeue_after(self, namespace, name, seconds):
        loop = asyncio.get_event_loop()
        loop.call_later(max(seconds, 0.01), lambda: self.queue.put_nowait((namespace, name)))

    def pods_of(self, job) -> list[dict]:
        uid = job["metadata"]["uid"]
        selector = job["spec"].get("selector")
        return [
            p
            for p in self.store.list("/pods", job["metadata"].get("namespace"))
            if any(r.get("uid") == uid and r.get("controller") for r in p["metadata"].get("ownerReferences") or [])
            and label_selector_object_match(selector, p["metadata"].get("labels"))
        ]

    def event(self, job, type_, reason, message):
        self.recorder.record(job, "Job", "batch/v1", type_, reason, message, "job-controller")

    def reconcile(self, namespace, name):
        job = self.store.get(JOB_KEY, namespace, name)
        if job is None:
            return
        meta, spec = job["metadata"], job.get("spec") or {}
        uid = meta["uid"]
        status = copy.deepcopy(job.get("status") or {})
        conditions = status.get("conditions") or []
        finished = any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions)
        pods = self.pods_of(job)
        counted = self.counted.setdefault(uid, {})
        for pod in pods:
            phase = (pod.get("status") or {}).get("phase")
            pod_uid = pod["metadata"]["uid"]
            if phase in ("Succeeded", "Failed") and pod_uid not in counted:
                counted[pod_uid] = "succeeded" if phase == "Succeeded" else "failed"
                status["succeeded" if phase == "Succeeded" else "failed"] = (
                    int(status.get("succeeded" if phase == "Succeeded" else "failed", 0)) + 1
                )
                if phase == "Failed":
                    self.last_failure[uid] = time.monotonic()
        active = [
            p
            for p in pods
            if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            and not p["metadata"].get("deletionTimestamp")
        ]
        terminating = [
            p
            for p in pods
            if p["metadata"].get("deletionTimestamp")
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        if meta.get("deletionTimestamp"):
            return
        now = now_rfc3339()
        status.setdefault("startTime", now)
        if finished:
            self._delete_pods(job, active)
            self._schedule_ttl(job, status)
            self._write(job, status, active=0, pods=pods, terminating=len(terminating) + len(active))
            return
        completions = spec.get("completions")
        parallelism = int(spec.get("parallelism", 1))
        succeeded = int(status.get("succeeded", 0))
        failed = int(status.get("failed", 0))
        backoff_limit = int(spec.get("backoffLimit", 6))
        deadline = spec.get("activeDeadlineSeconds")
        outcome = None
        if failed > backoff_limit:
            outcome = ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        elif deadline is not None and time.time() - _parse(status["startTime"]) >= float(deadline):
            outcome = ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
        elif (completions is not None and succeeded >= int(completions)) or (
            completions is None and succeeded > 0 and not active
        ):
            outcome = ("Complete", "CompletionsReached", "Reached expected number of succeeded pods")
        if outcome is not None:
            kind, reason, message = outcome
            self._delete_pods(job, active)
            interim = "SuccessCriteriaMet" if kind == "Complete" else "FailureTarget"
            status["conditions"] = conditions + [
                _condition(interim, reason, message, now),
                _condition(kind, reason, message, now),
            ]
            if kind == "Complete":
                status["completionTime"] = now
                self.event(job, "Normal", "Completed", "Job completed")
            else:
                self.event(job, "Warning", reason, message)
            self._write(job, status, active=0, pods=pods, terminating=len(terminating) + len(active))
            job = self.store.get(JOB_KEY, namespace, name)
            if job is not None:
                self._schedule_ttl(job, job.get("status") or {})
            return
        if deadline is not None:
            remaining = float(deadline) - (time.time() - _parse(status["startTime"]))
            self.requeue_after(namespace, name, remaining + 0.05)
        wanted = parallelism if completions is None else min(parallelism, int(completions) - succeeded)
        if completions is None and succeeded > 0:
            wanted = 0
        missing = wanted - len(active) - len(terminating)
        if missing > 0:
            since_failure = time.monotonic() - self.last_failure.get(uid, 0)
            backoff = min(0.1 * 2 ** max(failed - 1, 0), 1.0) if failed else 0
            if since_failure < backoff:
                self.requeue_after(namespace, name, backoff - since_failure)
            else:
                for _ in range(missing):
                    pod = self._create_pod(job)
                    if pod is not None:
                        active.append(pod)
        self._write(job, status, active=len(active), pods=pods, terminating=len(terminating))

    def _write(self, job, status, active, pods, terminating):
        status["active"] = active
        status["ready"] = sum(
            1
            for p in pods
            if (p.get("status") or {}).get("phase") == "Running"
            and any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (p.get("status") or {}).get("conditions") or []
            )
            and not p["metadata"].get("deletionTimestamp")
        )
        status["terminating"] = terminating
        status.setdefault("uncountedTerminatedPods", {})
        for key in ("active", "succeeded", "failed"):
            if not status.get(key):
                status.pop(key, None)
        current = self.store.get(JOB_KEY, job["metadata"].get("namespace"), job["metadata"]["name"])
        if current is None or current.get("status") == status:
            return
        updated = copy.deepcopy(current)
        updated["status"] = status
        self.store.update(JOB_KEY, updated)

    def _create_pod(self, job):
        meta = job["metadata"]
        template = copy.deepcopy(job["spec"].get("template") or {})
        pod_meta = template.get("metadata") or {}
        namespace = meta.get("namespace", "default")
        name = f"{meta['name'][:57]}-{random_suffix()}"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "generateName": f"{meta['name']}-",
                "namespace": namespace,
                "labels": dict(pod_meta.get("labels") or {}),
                "annotations": dict(pod_meta.get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
                "finalizers": list(pod_meta.get("finalizers") or []),
            },
            "spec": template.get("spec") or {},
        }
        if not pod["metadata"]["annotations"]:
            pod["metadata"].pop("annotations")
        if not pod["metadata"]["finalizers"]:
            pod["metadata"].pop("finalizers")
        rt = self.registry.by_key("/pods")
        fault = self.double.faults.take_create_fault(rt)
        if fault is not None:
            self.event(job, "Warning", "FailedCreate", f'Error creating: pods "{name}" is forbidden: {fault.message}')
            self.requeue_after(namespace, meta["name"], 1.0)
            return None
        try:
            created = self.double._api.create(rt, "v1", namespace, pod)
        except Exception as exc:
            self.event(job, "Warning", "FailedCreate", f"Error creating: {exc}")
            self.requeue_after(namespace, meta["name"], 1.0)
            return None
        self.event(job, "Normal", "SuccessfulCreate", f"Created pod: {name}")
        return created

    def _delete_pods(self, job, pods):
        rt = self.registry.by_key("/pods")
        for pod in pods:
            try:
                self.collector.delete(rt, pod["metadata"].get("namespace"), pod["metadata"]["name"], "Background")
                self.event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")
            except Exception:
                pass

    def _schedule_ttl(self, job, status):
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        uid = job["metadata"]["uid"]
        if ttl is None or uid in self.ttl_handles:
            return
        finished_at = status.get("completionTime") or next(
            (
                c.get("lastTransitionTime")
                for c in status.get("conditions") or []
                if c["type"] in ("Complete", "Failed")
            ),
            now_rfc3339(),
        )
        delay = max(float(ttl) - (time.time() - _parse(finished_at)), 0)
        namespace, name = job["metadata"].get("namespace"), job["metadata"]["name"]

        def expire():
            self.ttl_handles.pop(uid, None)
            current = self.store.get(JOB_KEY, namespace, name)
            if current is not None and current["metadata"]["uid"] == uid:
                try:
                    self.collector.delete(self.registry.by_key(JOB_KEY), namespace, name, "Background")
                except Exception:
                    pass

        self.ttl_handles[uid] = asyncio.get_event_loop().call_later(delay, expire)


def _condition(type_, reason, message, now):
    return {
        "type": type_,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": now,
        "lastTransitionTime": now,
    }
