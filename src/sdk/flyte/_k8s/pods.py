"""The pod of a remote call: what every resource (a Job, an operator's custom resource) puts in its pod templates.

:class:`RemoteCall` holds one call's identity and pod settings; :meth:`RemoteCall.pod_template` merges them into
the task's ``pod_template`` (the primary container, named as the template says, gets our image, command,
environment and resources; the user's other containers, volumes and fields are kept). Secrets go in by reference
(``secretKeyRef``, secret volumes), never by value.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any

from .names import PRIMARY_LABEL
from .settings import SETTINGS_ENV, KubernetesSettings

SECRETS_MOUNT = "/etc/flyte/secrets"
# Object-store endpoint settings a pod needs to reach the same store as its caller. Credentials are never copied
# into a manifest: pods get them from their cloud identity or the `storage_env_secret` Secret.
_STORAGE_ENDPOINT_VARS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION",
                          "AWS_ALLOW_HTTP", "AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "GOOGLE_STORAGE_EMULATOR_HOST",
                          "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_USE_EMULATOR")
# The credentials a `storage_env_secret` usually holds, by name: for a container that cannot take the whole Secret
# with envFrom (a TrainJob's trainer, MPI ranks started by mpirun), each as an optional secretKeyRef or export.
STORAGE_CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                           "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_SERVICE_ACCOUNT_KEY", "AZURE_STORAGE_ACCOUNT_KEY",
                           "AZURE_STORAGE_SAS_TOKEN", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID")


@dataclass
class RemoteCall:
    """One attempt of one task call, as the objects that run it will see it."""

    name: str
    namespace: str
    task: Any
    settings: KubernetesSettings
    image: str
    args: list[str]
    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    owner_references: list[dict[str, Any]] = field(default_factory=list)
    env_vars: dict[str, str] = field(default_factory=dict)

    @property
    def command(self) -> list[str]:
        return ["python", "-m", "flyte.runtime"]

    def metadata(self, name: str | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name or self.name, "namespace": self.namespace,
                                "labels": dict(self.labels), "annotations": dict(self.annotations)}
        if self.owner_references:
            meta["ownerReferences"] = copy.deepcopy(self.owner_references)
        return meta

    def env(self) -> list[dict[str, Any]]:
        """The primary container's environment: the task's variables, the tier's settings, the pod's identity (for
        the ownerReferences of nested calls), the store's endpoint, and secrets by reference."""
        env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(self.env_vars.items())]
        env.append({"name": SETTINGS_ENV, "value": self.settings.to_env()})
        for name, path in (("FLYTE_POD_NAME", "metadata.name"), ("FLYTE_POD_UID", "metadata.uid"),
                           ("FLYTE_POD_NAMESPACE", "metadata.namespace")):
            env.append({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}})
        for var in _STORAGE_ENDPOINT_VARS:
            if os.environ.get(var):
                env.append({"name": var, "value": os.environ[var]})
        for secret in self.task.settings.secrets:
            if secret.as_env_var:
                env.append({"name": secret.as_env_var, "valueFrom": {"secretKeyRef": {
                    "name": secret_object_name(secret), "key": secret.key}}})
        return env

    def resources(self) -> dict[str, Any]:
        return resource_requirements(self.task.settings.resources)

    def storage_credentials_env(self) -> list[dict[str, Any]]:
        """The ``storage_env_secret``'s usual credential keys as env entries (optional references: a key the Secret
        lacks is left out), for a container spec that has ``env`` but no ``envFrom``; none without that Secret."""
        secret = self.settings.storage_env_secret
        if not secret:
            return []
        return [{"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": name, "optional": True}}}
                for name in STORAGE_CREDENTIAL_VARS]

    def volumes(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(volumes, mounts): mounted secrets and /dev/shm."""
        volumes: list[dict[str, Any]] = []
        mounts: list[dict[str, Any]] = []
        for secret in self.task.settings.secrets:
            if secret.mount:
                name = f"secret-{len(volumes)}"
                volumes.append({"name": name, "secret": {"secretName": secret_object_name(secret),
                                                          "items": [{"key": secret.key, "path": secret.key}]}})
                mounts.append({"name": name, "mountPath": f"{SECRETS_MOUNT}/{secret.group or secret.key}",
                               "readOnly": True})
        resources = self.task.settings.resources
        shm = resources.get_shared_memory() if resources is not None else None
        if shm:
            limit = resources.limits().get("memory") if shm == "auto" else shm  # type: ignore[union-attr]
            empty_dir: dict[str, Any] = {"medium": "Memory"}
            if limit:
                empty_dir["sizeLimit"] = limit
            volumes.append({"name": "dshm", "emptyDir": empty_dir})
            mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
        return volumes, mounts

    def pod_template(self, *, restart_policy: str = "Never", primary: bool = True, extra_env: list[dict[str, Any]]
                     | None = None, args: list[str] | None = None, command: list[str] | None = None,
                     resources: dict[str, Any] | None = None, container_name: str | None = None) -> dict[str, Any]:
        """A ``PodTemplateSpec`` (metadata + spec) running this call's command in the primary container, merged into
        the task's pod_template. ``primary`` marks the pod whose logs and exit are the call's."""
        template = self.task.settings.pod_template
        if isinstance(template, str):
            raise ValueError(f"{self.task.name}: pod_template={template!r} names a PodTemplate object; the "
                             "Kubernetes tier needs a flyte.PodTemplate(pod_spec=...) value")
        spec: dict[str, Any] = copy.deepcopy(template.pod_spec) if template is not None else {}
        primary_name = container_name or (template.primary_container_name if template is not None else "primary")
        containers = spec.setdefault("containers", [])
        container = next((c for c in containers if c.get("name") == primary_name), None)
        if container is None:
            container = {"name": primary_name}
            containers.insert(0, container)
        container.setdefault("image", self.image)
        container["command"] = command if command is not None else self.command
        container["args"] = args if args is not None else list(self.args)
        container["env"] = [*container.get("env", []), *self.env(), *(extra_env or [])]
        if self.settings.storage_env_secret:
            container["envFrom"] = [*container.get("envFrom", []),
                                    {"secretRef": {"name": self.settings.storage_env_secret}}]
        wanted = resources if resources is not None else self.resources()
        if wanted:
            merged = dict(container.get("resources") or {})
            for side in ("requests", "limits"):
                if wanted.get(side):
                    merged[side] = {**(merged.get(side) or {}), **wanted[side]}
            container["resources"] = merged
        volumes, mounts = self.volumes()
        if volumes:
            spec["volumes"] = [*spec.get("volumes", []), *volumes]
            container["volumeMounts"] = [*container.get("volumeMounts", []), *mounts]
        spec["restartPolicy"] = restart_policy
        if self.settings.service_account and "serviceAccountName" not in spec:
            spec["serviceAccountName"] = self.settings.service_account
        if self.settings.image_pull_secrets:
            known = {s.get("name") for s in spec.get("imagePullSecrets", [])}
            spec["imagePullSecrets"] = [*spec.get("imagePullSecrets", []),
                                        *({"name": s} for s in self.settings.image_pull_secrets if s not in known)]
        labels = {**(template.labels if template is not None else {}), **self.labels}
        if primary:
            labels[PRIMARY_LABEL] = "true"
        metadata: dict[str, Any] = {"labels": labels}
        annotations = {**(template.annotations if template is not None else {}), **self.annotations}
        if annotations:
            metadata["annotations"] = annotations
        return {"metadata": metadata, "spec": spec}


def share_call_identity(call_pod: dict[str, Any], spec: dict[str, Any], container: dict[str, Any]) -> None:
    """Give another pod of the call (a Ray node, a Dask worker: where the user's code also runs) what the call's own
    pod has: its env (the task's variables and secrets by reference, the tier's settings), ``envFrom`` (the storage
    Secret), secret volumes and mounts, service account and image pull secrets. What ``spec`` and ``container``
    already have is kept, the call's appended after it."""
    call_spec = call_pod["spec"]
    call_container = call_spec["containers"][0]
    container["env"] = [*container.get("env", []), *copy.deepcopy(call_container.get("env", []))]
    if call_container.get("envFrom"):
        container["envFrom"] = [*container.get("envFrom", []), *copy.deepcopy(call_container["envFrom"])]
    if call_spec.get("volumes"):
        spec["volumes"] = [*spec.get("volumes", []), *copy.deepcopy(call_spec["volumes"])]
        container["volumeMounts"] = [*container.get("volumeMounts", []),
                                     *copy.deepcopy(call_container.get("volumeMounts", []))]
    for key in ("serviceAccountName", "imagePullSecrets"):
        if key in call_spec and key not in spec:
            spec[key] = copy.deepcopy(call_spec[key])


def resource_requirements(requests: Any, limits: Any = None) -> dict[str, Any]:
    """A container's ``resources`` from :class:`flyte.Resources`: ``requests`` from the first, ``limits`` from the
    second (default: the first's own limits)."""
    out: dict[str, Any] = {}
    if requests is not None and requests.requests():
        out["requests"] = requests.requests()
    source = limits if limits is not None else requests
    if source is not None and source.limits():
        out["limits"] = source.limits()
    return out


def secret_object_name(secret: Any) -> str:
    """The Kubernetes Secret a :class:`flyte.Secret` refers to: its ``group``, else its ``key`` (lower-cased)."""
    from .names import dns1035

    return dns1035(secret.group or secret.key, 253)


def image_of(task: Any, settings: KubernetesSettings | None) -> str:
    """The image a task runs in: its environment's (a name, or a flyte.Image's URI); ``"auto"`` is the configured
    default image (the ``kubernetes.image`` setting, else the un-named image of ``flyte.init(images=...)``), else the
    SDK's default image for this Python."""
    from .._initialize import initialized

    config = initialized()
    image = task.environment.image
    if image is None or image == "auto":
        if settings is not None and settings.image:
            return settings.image
        if config is not None and config.images.get("default"):
            return config.images["default"]
        from .._image import Image

        return Image.from_debian_base().uri
    if isinstance(image, str):  # a name flyte.init(images=...) gave a URI, or the URI itself
        return config.images.get(image, image) if config is not None else image
    return str(image.uri)
