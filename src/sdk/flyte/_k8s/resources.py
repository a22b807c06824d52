"""What object a remote call becomes, and how to read its end from the object's status.

A :class:`KubernetesResource` builds the manifest of one call (a plain task: a ``batch/v1`` Job; a plugin's task:
the operator's custom resource, built by the plugin's own resource registered with :func:`register`; a plugin with
none runs its embedded engine inside a Job's pod) and says when
the object has finished. The controller creates, watches and deletes it the same way whatever its kind; the call's
primary pod (labelled ``flyte.org/primary``) gives the logs and the container's exit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .names import JOB_NAME_LIMIT
from .pods import RemoteCall


@dataclass(frozen=True)
class Outcome:
    """A finished object: whether it succeeded, and the reason and message its status gives."""

    succeeded: bool
    reason: str = ""
    message: str = ""


class KubernetesResource:
    """A kind of object that runs remote calls. Subclasses set the class attributes and implement :meth:`build`
    and :meth:`outcome`."""

    api_version: ClassVar[str]
    kind: ClassVar[str]
    plural: ClassVar[str]
    name_limit: ClassVar[int] = JOB_NAME_LIMIT

    def build(self, call: RemoteCall) -> dict[str, Any]:
        """The manifest of the call's object (the one created, watched and deleted)."""
        raise NotImplementedError

    def outcome(self, obj: dict[str, Any]) -> Outcome | None:
        """The object's end read from its status, or None while it is not over."""
        raise NotImplementedError

    def handles(self, config: Any) -> bool:
        """Whether this plugin config runs as this resource (False: as a plain Job, e.g. attached to a cluster)."""
        return True

    def started(self, obj: dict[str, Any]) -> bool:
        """Whether the object's status says its work started (for kinds whose pods the SDK cannot watch by label;
        the pending timeout stops counting then)."""
        return False

    def writes_outputs(self, call: RemoteCall) -> bool:
        """Whether the call's primary container runs ``flyte.runtime``, which leaves an outputs or error document.
        False for an object that runs a program of the user's own (a JVM application): it succeeds when its status
        says so, and the call returns None."""
        return True

    def primary_pod(self, pods: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The pod whose log and exit are the call's, among the call's pods labelled ``flyte.org/primary`` (None:
        not there yet). Default: the newest, since a Job may replace a pod. A kind whose replicas share one
        template, so that every node carries the label, picks its node 0 here."""
        return max(pods, key=lambda pod: pod["metadata"].get("creationTimestamp", "")) if pods else None

    def variant(self, settings: Any) -> KubernetesResource:
        """The resource to use under these settings (a plugin may offer another kind, e.g. Trainer v2's TrainJob)."""
        return self

    def primary_container(self, call: RemoteCall) -> str:
        """The container of the primary pod whose log and exit are the call's."""
        template = call.task.settings.pod_template
        return template.primary_container_name if template is not None and not isinstance(template, str) \
            else "primary"

    def collection_path(self, namespace: str) -> str:
        group_version = self.api_version
        base = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
        return f"{base}/namespaces/{namespace}/{self.plural}"

    def path(self, namespace: str, name: str) -> str:
        return f"{self.collection_path(namespace)}/{name}"


class JobResource(KubernetesResource):
    """A plain task call: a ``batch/v1`` Job with one pod and no retries of its own (the controller's retries make a
    new attempt object), removed by ``ttlSecondsAfterFinished`` if the controller could not delete it."""

    api_version = "batch/v1"
    kind = "Job"
    plural = "jobs"

    def build(self, call: RemoteCall) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "backoffLimit": 0,
            "completions": 1,
            "parallelism": 1,
            "ttlSecondsAfterFinished": call.settings.ttl_seconds_after_finished,
            "template": call.pod_template(),
        }
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": call.metadata(), "spec": spec}

    def outcome(self, obj: dict[str, Any]) -> Outcome | None:
        return condition_outcome(obj, "Complete", "Failed")


def condition_outcome(obj: dict[str, Any], succeeded: str, failed: str) -> Outcome | None:
    """The end an object's ``status.conditions`` state: the first True condition of type ``succeeded`` or
    ``failed`` (a Job's Complete/Failed, a TrainJob's)."""
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == succeeded:
            return Outcome(True, condition.get("reason", succeeded), condition.get("message", ""))
        if condition.get("type") == failed:
            return Outcome(False, condition.get("reason", failed), condition.get("message", ""))
    return None


_registry: list[tuple[type, KubernetesResource]] = []


def register(config_type: type, resource: KubernetesResource) -> None:
    """Run tasks whose ``plugin_config`` is a ``config_type`` as ``resource`` on Kubernetes."""
    _registry.append((config_type, resource))


def resource_for(task: Any, settings: Any = None) -> KubernetesResource:
    """The object of a call of ``task``: a Job for a plain task, or with ``plugin_resources: embedded`` (clusters
    without the plugin's operator); else the plugin's operator resource when it has one."""
    config = task.settings.plugin_config
    if config is None or getattr(settings, "plugin_resources", "operators") == "embedded":
        return JobResource()
    resource = _registered(config)
    if resource is None:
        _load_plugin_resources(config)
        resource = _registered(config)
    if resource is None or not resource.handles(config):
        # No operator resource for this plugin (or this config, e.g. attached to a cluster): a Job whose pod runs
        # the engine as it runs on this machine.
        return JobResource()
    return resource.variant(settings)


def _registered(config: Any) -> KubernetesResource | None:
    return next((resource for config_type, resource in reversed(_registry) if isinstance(config, config_type)), None)


def _load_plugin_resources(config: Any) -> None:
    """A plugin registers its resource in its ``_k8s`` module (``flyteplugins.<plugin>._k8s``), imported when first
    needed so that the Kubernetes code of a plugin loads only for remote runs."""
    import importlib

    module = type(config).__module__
    if module.startswith("flyteplugins."):
        package = ".".join(module.split(".")[:2])
        try:
            importlib.import_module(f"{package}._k8s")
        except ModuleNotFoundError as exc:
            if exc.name != f"{package}._k8s":
                raise
