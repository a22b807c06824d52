"""A run's link to the cluster: one API connection, the run's watches, its data on the object store, and the objects
it created, which it deletes however the calls end.

One attempt of a remote call (:meth:`RemoteSession.run_attempt`):

1. inputs, the pickled task and the code bundle go to the object store (the bundle once per content, under
   ``<storage>/bundles/``; the rest under ``<storage>/runs/<run>/<action>/<attempt>/``);
2. the task's resource builds the manifests and the main object is created; a 409 for an object of this same
   call (a retried create whose answer was lost, a controller that crashed and came back) is adopted;
3. the run's watches (list then watch, see ``informer``) follow the object and its primary pod; the pod's log is
   followed once its container runs; a pod that cannot start fails the call after ``start_failure_grace`` with its
   Events, and so does an object whose controller reports it could not create its pod (``FailedCreate``, e.g. a
   ResourceQuota); one not started after ``pending_timeout`` fails it too;
4. when the object or the pod is done, the pod's log is shown to its end (the pod asked for directly when its watch
   lags the object's), then the outputs or the error document on the store decide the outcome (the object's
   status confirms it, and names the cause when the pod died without a document: OOMKilled, a signal);
5. the object is deleted: in the background after an outcome was read, or, when the call was cut short (timeout,
   cancellation, Ctrl-C, a failing sibling), at once with Foreground propagation, shielded, waiting until it is gone
   (with a deadline). Jobs also carry ``ttlSecondsAfterFinished`` for the case where nobody is left to delete them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from typing import Any

import anyio

from .. import _storage
from .._staging import RunStaging, attempt_location, runtime_args
from .._threads import shielded
from ..errors import MaxQueuedTimeExceededError, RuntimeSystemError, RuntimeUserError
from .client import ApiError, Kube
from .failures import (
    IMMEDIATE,
    creation_error,
    creation_problem,
    describe_event,
    exit_error,
    start_error,
    start_problem,
    termination,
)
from .informer import Informer
from .logs import LogFollower, previous_log, terminal_sink
from .names import ACTION_LABEL, ATTEMPT_LABEL, PRIMARY_LABEL, RUN_LABEL, call_labels, label_value, object_name
from .pods import RemoteCall, image_of
from .resources import KubernetesResource, resource_for
from .settings import KubernetesSettings

log = logging.getLogger("flyte.k8s")
DELETE_DEADLINE_S = 60.0
BACKSTOP_S = 10.0  # how often a waiting call GETs its object, whatever the watch says
RESULT_GRACE_S = 10.0  # how long an object that says it is done may wait for its outputs to be visible
CREATE_EVENTS_S = 1.0  # how often an object without a pod is asked (its Events) whether its pod was refused
LOG_DRAIN_S = 10.0  # how long a finished pod's log may take to reach its end (normally: at once)


class RemoteSession:
    def __init__(self, settings: KubernetesSettings, run: Any, kube: Kube) -> None:
        self.settings = settings
        self.run = run
        self.kube = kube
        self.namespace = settings.namespace
        self.run_prefix = f"{settings.storage_uri}/runs/{run.name}"
        self._pods_path = f"/api/v1/namespaces/{self.namespace}/pods"  # the run's pods: one watch for all its calls
        self._informers: dict[str, Informer] = {}
        self._changed = asyncio.Event()
        self.staging = RunStaging(run, settings.storage_uri, self.run_prefix,
                                  bundle_uri=run.scratch.get("k8s_bundle_uri"))
        self._deletions: set[asyncio.Task[None]] = set()
        self.owner_references = _caller_pod_reference()
        self.in_pod = bool(self.owner_references)

    @classmethod
    async def open(cls, settings: KubernetesSettings, run: Any) -> RemoteSession:
        settings.storage_uri  # noqa: B018 - fail early, naming the setting, when there is no storage
        return cls(settings, run, await Kube.connect(settings))

    # -- watches ----------------------------------------------------------------------------------------------
    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait(self, seconds: float) -> None:
        """Until a watched object changes, or ``seconds`` pass."""
        event = self._changed
        with anyio.move_on_after(seconds):
            await event.wait()

    def informer(self, collection: str) -> Informer:
        informer = self._informers.get(collection)
        if informer is None:
            informer = Informer(self.kube, collection, f"{RUN_LABEL}={label_value(self.run.name)}",
                                server_timeout=self.settings.watch_timeout,
                                stall_timeout=self.settings.watch_stall_timeout, on_change=self._notify)
            informer.start()
            self._informers[collection] = informer
        return informer

    # -- one attempt ------------------------------------------------------------------------------------------
    def build_call(self, task: Any, action: Any, attempt: int, resource: KubernetesResource, *, task_uri: str,
                   bundle_uri: str | None) -> tuple[RemoteCall, str]:
        """The call's pod settings and its outputs URI."""
        return build_call(self.settings, self.run, task, action, attempt, resource, task_uri=task_uri,
                          bundle_uri=bundle_uri, owner_references=self.owner_references,
                          root=action.parent is None and not self.in_pod, run_prefix=self.run_prefix)

    async def run_attempt(self, task: Any, encoded: dict[str, bytes], action: Any) -> bytes:
        resource = resource_for(task, self.settings)
        attempt = action.attempts
        await self.staging.write_inputs(action.name, attempt, encoded)
        task_uri, bundle_uri = await asyncio.gather(self.staging.task_uri(task), self.staging.bundle_uri())
        call, outputs_uri = self.build_call(task, action, attempt, resource, task_uri=task_uri, bundle_uri=bundle_uri)
        manifest = resource.build(call)
        objects = self.informer(resource.collection_path(self.namespace))
        self.informer(self._pods_path)
        action.links[resource.kind] = f"{self.namespace}/{call.name}"
        done = False
        try:
            objects.store(await self._create(resource, manifest))
            output = await self._supervise(resource, call, outputs_uri, action)
            done = True
            return output
        finally:
            if done:
                self._delete_later(resource, call.name)
            else:
                await self._delete_now(resource, call.name)

    async def _create(self, resource: KubernetesResource, manifest: dict[str, Any]) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        try:
            return await self.kube.create(resource.collection_path(self.namespace), manifest)
        except ApiError as exc:
            if exc.status == 403:
                raise RuntimeUserError("Forbidden", f"creating {resource.kind} {name} was refused: {exc.message}") \
                    from None
            if exc.status == 422:
                raise RuntimeUserError("Invalid", f"{resource.kind} {name} is not valid: {exc.message}") from None
            if exc.status != 409:
                raise
        existing = await self.kube.get(resource.path(self.namespace, name))
        labels = (existing or {}).get("metadata", {}).get("labels") or {}
        mine = manifest["metadata"]["labels"]
        if existing is not None and all(labels.get(k) == mine.get(k) for k in (RUN_LABEL, ACTION_LABEL,
                                                                                 ATTEMPT_LABEL)):
            log.info("adopting %s %s left by an earlier controller of run %s", resource.kind, name, self.run.name)
            return existing
        if existing is None:  # deleted in between: create again
            return await self.kube.create(resource.collection_path(self.namespace), manifest)
        raise RuntimeSystemError("NameConflict", f"{resource.kind} {self.namespace}/{name} exists and belongs to "
                                                 f"another run ({labels.get(RUN_LABEL)!r})")

    def _call_pods(self, call: RemoteCall) -> list[dict[str, Any]]:
        """The pods of this attempt of the call, in any role (the run's pod watch holds them)."""
        pods = self._informers[self._pods_path].objects
        action, attempt = call.labels[ACTION_LABEL], call.labels[ATTEMPT_LABEL]
        return [pod for pod in pods.values()
                if (labels := pod["metadata"].get("labels") or {}).get(ACTION_LABEL) == action
                and labels.get(ATTEMPT_LABEL) == attempt]

    def _primary_pod(self, resource: KubernetesResource, call: RemoteCall) -> dict[str, Any] | None:
        found = [pod for pod in self._call_pods(call)
                 if (pod["metadata"].get("labels") or {}).get(PRIMARY_LABEL) == "true"]
        # Several pods may carry the label (a Job's replacement pod, every node of a job whose replicas share one
        # template): the call's resource says which one counts.
        return resource.primary_pod(found)

    def _pending_pods(self, call: RemoteCall) -> list[str]:
        """Names of the call's pods (any role) still Pending."""
        return sorted(pod["metadata"]["name"] for pod in self._call_pods(call)
                      if (pod.get("status") or {}).get("phase", "Pending") == "Pending")

    async def _supervise(self, resource: KubernetesResource, call: RemoteCall, outputs_uri: str,
                         action: Any) -> bytes:
        objects = self._informers[resource.collection_path(self.namespace)]
        container = resource.primary_container(call)
        started_at = time.monotonic()
        problem_since: float | None = None
        refusal: tuple[str, str] | None = None  # why the object's controller could not create its pod, if it said
        events_checked = started_at
        ever_started = False
        last_backstop = started_at
        follower: LogFollower | None = None
        pod: dict[str, Any] | None = None
        try:
            while True:
                obj = objects.objects.get(call.name)
                if obj is None and call.name in objects.deleted:
                    raise RuntimeSystemError("Deleted", f"{resource.kind} {self.namespace}/{call.name} was deleted "
                                                        "before it finished")
                pod = self._primary_pod(resource, call)
                if pod is not None and follower is None and _container_started(pod, container):
                    ever_started = True
                    follower = self._follow(resource, call, pod, container, action)
                if obj is not None and not ever_started and resource.started(obj):
                    ever_started = True
                outcome = resource.outcome(obj) if obj is not None else None
                phase = ((pod or {}).get("status") or {}).get("phase")
                if outcome is not None or phase in ("Succeeded", "Failed"):
                    deleting = obj is None or bool(obj["metadata"].get("deletionTimestamp"))
                    if not deleting:
                        follower, pod = await self._finish_log(resource, call, pod, container, follower, action)
                    return await self._result(resource, call, outputs_uri, outcome, pod, container, follower,
                                              deleting)
                problem = start_problem(pod)
                now = time.monotonic()
                podless = pod is None and obj is not None and not ever_started
                if podless and now - events_checked >= CREATE_EVENTS_S:
                    # A controller that cannot create the pod (a ResourceQuota refusing it) leaves no pod to look at,
                    # only Warning events on the object.
                    events_checked = now
                    refusal = creation_problem(await self._events(call.name))
                if problem is None and podless:
                    problem = refusal
                if problem is not None:
                    problem_since = problem_since or now
                    if problem[0] in IMMEDIATE or now - problem_since >= self.settings.start_failure_grace:
                        if pod is None:
                            raise creation_error(resource.kind, f"{self.namespace}/{call.name}", *problem,
                                                 await self._events(call.name))
                        raise start_error(*problem, pod["metadata"]["name"], await self._events(pod["metadata"]["name"]))
                else:
                    problem_since = None
                if not ever_started and now - started_at > self.settings.pending_timeout:
                    # Without a primary pod yet, the object's events and those of its other pods still pending
                    # (a Ray head no node can take) say what it waits for.
                    names = [pod["metadata"]["name"]] if pod else [call.name, *self._pending_pods(call)]
                    events = [event for name in names for event in await self._events(name)]
                    raise MaxQueuedTimeExceededError(
                        f"{action.task_name} (action {action.name}): {resource.kind} {call.name} did not start "
                        f"within pending_timeout={self.settings.pending_timeout:g}s" +
                        "".join(f"\n{describe_event(e)}" for e in events))
                if now - last_backstop >= BACKSTOP_S:
                    last_backstop = now
                    await objects.refresh(call.name)
                await self._wait(min(BACKSTOP_S, CREATE_EVENTS_S if problem is not None or podless else BACKSTOP_S))
        finally:
            if follower is not None:
                await follower.stop(drain_s=2.0 if _pod_done(pod) else 0.0)

    def _follow(self, resource: KubernetesResource, call: RemoteCall, pod: dict[str, Any], container: str,
                action: Any) -> LogFollower:
        follower = LogFollower(self.kube, self.namespace, pod["metadata"]["name"], container,
                               terminal_sink(f"[{action.name} {action.task_name}] "),
                               lambda: _pod_done(self._primary_pod(resource, call)))
        follower.start()
        return follower

    async def _finish_log(self, resource: KubernetesResource, call: RemoteCall, pod: dict[str, Any] | None,
                          container: str, follower: LogFollower | None,
                          action: Any) -> tuple[LogFollower | None, dict[str, Any] | None]:
        """Shows the rest of a finished call's log before its result. The object and its pods come on separate
        watch streams, so the object can say it is done before the pod's stream showed the pod running, or done:
        the pod is then asked for directly, and its log read to the end (a finished container's log is kept)."""
        if pod is None or not _pod_done(pod):
            with contextlib.suppress(ApiError, OSError, asyncio.TimeoutError):
                pod = await self._fetch_primary_pod(resource, call) or pod
        if follower is None and pod is not None and _container_started(pod, container):
            follower = self._follow(resource, call, pod, container, action)
        if follower is not None:
            # A pod still running (its object failed for another replica's sake) may never end its log.
            await follower.stop(drain_s=LOG_DRAIN_S if _pod_done(pod) else 2.0)
        return follower, pod

    async def _fetch_primary_pod(self, resource: KubernetesResource, call: RemoteCall) -> dict[str, Any] | None:
        """The call's primary pod as the API server has it now; the pod watch's cache takes it too."""
        await self._informers[self._pods_path].refresh_matching(
            f"{ACTION_LABEL}={call.labels[ACTION_LABEL]},{ATTEMPT_LABEL}={call.labels[ATTEMPT_LABEL]},"
            f"{PRIMARY_LABEL}=true")
        return self._primary_pod(resource, call)

    async def _result(self, resource: KubernetesResource, call: RemoteCall, outputs_uri: str, outcome: Any,
                      pod: dict[str, Any] | None, container: str, follower: LogFollower | None,
                      deleting: bool = False) -> bytes:
        from ..runtime import ERROR_FILE, OUTPUTS_FILE, error_from_document

        writes = resource.writes_outputs(call)
        deadline = time.monotonic() + RESULT_GRACE_S
        while writes:
            with contextlib.suppress(FileNotFoundError):
                return await _storage.read_bytes_async(f"{outputs_uri}/{OUTPUTS_FILE}")
            with contextlib.suppress(FileNotFoundError):
                raise error_from_document(await _storage.read_bytes_async(f"{outputs_uri}/{ERROR_FILE}"))
            failed = (outcome is not None and not outcome.succeeded) or \
                ((pod or {}).get("status") or {}).get("phase") == "Failed"
            if failed or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        if not writes and outcome is None:  # the pod ended first; the object's own word on it follows shortly
            objects, deadline = self._informers[resource.collection_path(self.namespace)], time.monotonic() + 5.0
            while outcome is None and time.monotonic() < deadline:
                await self._wait(0.5)
                obj = objects.objects.get(call.name)
                outcome = resource.outcome(obj) if obj is not None else None
        phase = ((pod or {}).get("status") or {}).get("phase")
        if not writes and (outcome.succeeded if outcome is not None else phase == "Succeeded"):
            return call.task.interface.encode_output(None, self.run.raw_data_path)  # nothing to read: None
        if follower is not None:
            await follower.stop()
        tail = "\n".join(follower.lines[-20:]) if follower is not None else ""
        if deleting:  # someone deleted the object (or its owner) while it ran
            ended = exit_error(pod, container) if pod is not None else None
            raise RuntimeSystemError("Deleted", f"{resource.kind} {self.namespace}/{call.name} was deleted before it "
                                                f"finished{f' ({ended})' if ended else ''}")
        if not writes:  # the user's own program failed: the object's state, the exit and the log say why
            if pod is not None and not tail:
                tail = await previous_log(self.kube, self.namespace, pod["metadata"]["name"], container)
            code = (termination(pod, container) or {}).get("exitCode") if pod is not None else None
            why = outcome.message if outcome is not None and outcome.message else \
                f"container {container} exited with code {code}"
            raise RuntimeUserError(outcome.reason if outcome is not None else f"ExitCode{code}",
                                   f"{resource.kind} {self.namespace}/{call.name} failed: {why}" +
                                   (f"\nLast lines of its log:\n{tail}" if tail else ""))
        if pod is not None and (pod.get("status") or {}).get("phase") == "Failed":
            if not tail:
                tail = await previous_log(self.kube, self.namespace, pod["metadata"]["name"], container)
            raise exit_error(pod, container, tail)
        if outcome is not None and not outcome.succeeded:
            raise RuntimeSystemError(outcome.reason or "Failed", f"{resource.kind} {self.namespace}/{call.name} "
                                                                  f"failed: {outcome.message}")
        raise RuntimeSystemError("OutputsMissing", f"{resource.kind} {self.namespace}/{call.name} finished but left "
                                                   f"no outputs or error document under {outputs_uri}")

    async def _events(self, name: str) -> list[dict[str, Any]]:
        with contextlib.suppress(ApiError, OSError, asyncio.TimeoutError):
            listed = await self.kube.request("GET", f"/api/v1/namespaces/{self.namespace}/events",
                                             query={"fieldSelector": f"involvedObject.name={name}"}, request_timeout=10.0)
            items = listed.get("items") or []
            return sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        return []

    # -- cleanup ----------------------------------------------------------------------------------------------
    def _delete_later(self, resource: KubernetesResource, name: str) -> None:
        task = asyncio.ensure_future(self._delete(resource, name, wait=False))
        self._deletions.add(task)
        task.add_done_callback(self._deletions.discard)

    async def _delete_now(self, resource: KubernetesResource, name: str) -> None:
        # Shielded from native Task.cancel() as well as anyio's: a second interrupt must not cut the deletion short.
        await shielded(functools.partial(self._delete, resource, name, wait=True))

    async def _delete(self, resource: KubernetesResource, name: str, *, wait: bool) -> None:
        path = resource.path(self.namespace, name)
        with anyio.move_on_after(DELETE_DEADLINE_S) as scope:
            try:
                if not await self.kube.delete(path, "Foreground" if wait else "Background"):
                    return
                while wait and await self.kube.get(path) is not None:  # noqa: ASYNC110 - polling the API server
                    await asyncio.sleep(0.1)
            except (ApiError, OSError) as exc:
                log.warning("could not delete %s %s/%s: %s (ttlSecondsAfterFinished or `flyte gc` will)",
                            resource.kind, self.namespace, name, exc)
        if scope.cancelled_caught:
            log.warning("%s %s/%s was not gone after %gs", resource.kind, self.namespace, name, DELETE_DEADLINE_S)

    async def close(self) -> None:
        await shielded(self._close)

    async def _close(self) -> None:
        if self._deletions:
            with anyio.move_on_after(DELETE_DEADLINE_S):
                await asyncio.gather(*list(self._deletions), return_exceptions=True)
        for informer in self._informers.values():
            await informer.stop()
        self._informers.clear()
        if not self.in_pod and not self.run.options.keep_raw_data:
            await self._remove_call_data()
        await self.kube.close()

    async def _remove_call_data(self) -> None:
        with contextlib.suppress(Exception):  # the run's outcome stands whatever is left on the store
            await self.staging.remove_call_data()


def build_call(settings: KubernetesSettings, run: Any, task: Any, action: Any, attempt: int,
               resource: KubernetesResource, *, task_uri: str, bundle_uri: str | None,
               owner_references: list[dict[str, Any]], root: bool, run_prefix: str) -> tuple[RemoteCall, str]:
    """One attempt's :class:`RemoteCall` (also what ``--dry-run`` shows) and its outputs URI."""
    base = attempt_location(run_prefix, action.name, attempt)
    outputs_uri = f"{base}/outputs"
    args = runtime_args(task_uri=task_uri, attempt_uri=base, raw_data_path=run.raw_data_path, run_name=run.name,
                        action_name=action.name, bundle_uri=bundle_uri, attempt=attempt)
    labels = {**settings.labels, **call_labels(run.name, action.name, task.name, attempt, root)}
    call = RemoteCall(
        name=object_name(run.name, action.name, attempt, resource.name_limit), namespace=settings.namespace,
        task=task, settings=settings, image=image_of(task, settings), args=args, labels=labels,
        annotations={"flyte.org/task-name": task.name, "flyte.org/outputs": outputs_uri},
        owner_references=owner_references, env_vars={**run.options.env_vars, **task.settings.env_vars})
    return call, outputs_uri


def _caller_pod_reference() -> list[dict[str, Any]]:
    """Inside a pod the tier started: an ownerReference to that pod, so deleting a call deletes its children."""
    name, uid = os.environ.get("FLYTE_POD_NAME"), os.environ.get("FLYTE_POD_UID")
    if not name or not uid:
        return []
    return [{"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid, "blockOwnerDeletion": True}]


def _container_started(pod: dict[str, Any], container: str) -> bool:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            state = status.get("state") or {}
            return "running" in state or "terminated" in state or bool(status.get("restartCount"))
    return False


def _pod_done(pod: dict[str, Any] | None) -> bool:
    return pod is None or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
