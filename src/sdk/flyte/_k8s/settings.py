"""Where remote runs go: the cluster, namespace, identity, object storage and pod defaults of the Kubernetes tier.

Read from ``flyte.init(kubernetes=...)`` or the ``kubernetes:`` section of flyte-sdk's ``config.yaml``
(``flyte.init_from_config()``), the same keys both ways::

    kubernetes:
      kubeconfig: ~/.kube/config      # default: $KUBECONFIG, then ~/.kube/config; in a pod, the in-cluster account
      context: my-cluster             # default: the kubeconfig's current context
      namespace: flyte                # default: "default"
      service_account: flyte-runner   # the pods' identity (needs the RBAC in the README to submit nested calls)
      storage: s3://my-bucket/flyte   # where bundles, inputs and outputs go (s3://, gs://, abfs://, file:// shared)
      image: ghcr.io/me/app:1.0       # default image of environments that name none
      image_pull_secrets: [regcred]
      labels: {team: ml}              # added to every object
      storage_env_secret: s3-creds    # a Secret whose keys become the pods' env (AWS_ACCESS_KEY_ID...), by reference
      ttl_seconds_after_finished: 3600
      pending_timeout: 600            # seconds a pod may stay unscheduled or not started
      start_failure_grace: 30         # seconds an image-pull or config error may last before the call fails
      watch_timeout: 60               # the server ends each watch after this many seconds; it is resumed
      watch_stall_timeout: 90         # a watch silent this long (no event, no bookmark) is dropped and resumed
      plugin_resources: operators     # plugin tasks as the operators' custom resources (SparkApplication,
                                      # RayJob, DaskJob, PyTorchJob); "embedded": a Job whose pod runs the engine
      pytorch_resource: PyTorchJob    # or TrainJob (Kubeflow Trainer v2) with runtimeRef training_runtime
      training_runtime: torch-distributed
      mpi_operator: mpi-operator      # MPIJob kubeflow.org/v2beta1; "training-operator": the v1 MPIJob
      remote: true                    # flyte.run goes to the cluster without with_runcontext(mode="remote")

Nothing here imports kubernetes_asyncio or obstore.
"""

from __future__ import annotations

import os
import re
from typing import Any

import msgspec

_DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_STORAGE_SCHEMES = ("s3", "gs", "abfs", "abfss", "az", "file", "memory")

# Set in every pod the tier starts: the settings, so that nested calls made in the pod go to the same cluster.
SETTINGS_ENV = "FLYTE_K8S_SETTINGS"


class KubernetesSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The Kubernetes tier's settings (see the module docstring for each key)."""

    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool | None = None
    namespace: str = "default"
    service_account: str | None = None
    storage: str | None = None
    image: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    storage_env_secret: str | None = None
    ttl_seconds_after_finished: int = 3600
    pending_timeout: float = 600.0
    start_failure_grace: float = 30.0
    watch_timeout: int = 60
    watch_stall_timeout: float = 90.0
    plugin_resources: str = "operators"
    pytorch_resource: str = "PyTorchJob"
    training_runtime: str = "torch-distributed"
    mpi_operator: str = "mpi-operator"
    remote: bool = False

    def __post_init__(self) -> None:
        if not _DNS_1123_LABEL.match(self.namespace):
            raise ValueError(f"kubernetes.namespace: {self.namespace!r} is not a valid namespace name "
                             "(lower-case letters, digits and '-', at most 63)")
        if self.service_account is not None and not _is_subdomain(self.service_account):
            raise ValueError(f"kubernetes.service_account: {self.service_account!r} is not a valid name")
        if self.storage is not None:
            scheme = self.storage.split("://", 1)[0] if "://" in self.storage else ""
            if scheme not in _STORAGE_SCHEMES:
                raise ValueError(f"kubernetes.storage: {self.storage!r}; allowed: a URI with one of the schemes "
                                 f"{', '.join(s + '://' for s in _STORAGE_SCHEMES)}")
        for key, value in self.labels.items():
            if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
                raise ValueError(f"kubernetes.labels: {key!r}: {value!r} is not a valid Kubernetes label")
        for secret in self.image_pull_secrets:
            if not _is_subdomain(secret):
                raise ValueError(f"kubernetes.image_pull_secrets: {secret!r} is not a valid Secret name")
        if self.ttl_seconds_after_finished < 0:
            raise ValueError("kubernetes.ttl_seconds_after_finished: must be >= 0")
        if self.pending_timeout <= 0 or self.start_failure_grace < 0:
            raise ValueError("kubernetes.pending_timeout must be > 0 and start_failure_grace >= 0 (seconds)")
        if self.plugin_resources not in ("operators", "embedded"):
            raise ValueError(f"kubernetes.plugin_resources: {self.plugin_resources!r}; allowed: 'operators', "
                             "'embedded'")
        if self.pytorch_resource not in ("PyTorchJob", "TrainJob"):
            raise ValueError(f"kubernetes.pytorch_resource: {self.pytorch_resource!r}; allowed: 'PyTorchJob', "
                             "'TrainJob'")
        if self.mpi_operator not in ("mpi-operator", "training-operator"):
            raise ValueError(f"kubernetes.mpi_operator: {self.mpi_operator!r}; allowed: 'mpi-operator' (MPIJob "
                             "kubeflow.org/v2beta1), 'training-operator' (MPIJob kubeflow.org/v1)")
        if not _is_subdomain(self.training_runtime):
            raise ValueError(f"kubernetes.training_runtime: {self.training_runtime!r} is not a valid name")
        if self.watch_timeout < 1 or self.watch_stall_timeout <= 0:
            raise ValueError("kubernetes.watch_timeout must be >= 1 and watch_stall_timeout > 0 (seconds)")

    @property
    def storage_uri(self) -> str:
        if not self.storage:
            raise ValueError("kubernetes.storage: remote runs need an object-store URI (s3://bucket/prefix, gs://, "
                             "abfs://, or file:// on a volume every pod mounts); set it in flyte.init(kubernetes=...) "
                             "or the config file's kubernetes section")
        return self.storage.rstrip("/")

    def to_env(self) -> str:
        """The settings for the pods' environment: in a pod, the cluster is reached with the in-cluster account."""
        inside = msgspec.structs.replace(self, kubeconfig=None, context=None, in_cluster=True, remote=True)
        return msgspec.json.encode(inside).decode()


def _is_subdomain(name: str) -> bool:
    return len(name) <= 253 and all(_DNS_1123_LABEL.match(part) for part in name.split("."))


def parse(value: Any, where: str = "kubernetes") -> KubernetesSettings:
    """Settings from a mapping (a config file section, ``flyte.init``'s argument) or a KubernetesSettings."""
    if isinstance(value, KubernetesSettings):
        return value
    if not isinstance(value, dict):
        raise TypeError(f"{where}: expected a mapping of settings, got {type(value).__name__}")
    data = dict(value)
    if data.get("kubeconfig"):
        data["kubeconfig"] = os.path.expanduser(str(data["kubeconfig"]))
    if isinstance(data.get("image_pull_secrets"), str):
        data["image_pull_secrets"] = [data["image_pull_secrets"]]
    try:
        return msgspec.convert(data, KubernetesSettings, strict=False)
    except msgspec.ValidationError as exc:
        allowed = ", ".join(KubernetesSettings.__struct_fields__)
        raise ValueError(f"{where}: {exc}; allowed keys: {allowed}") from None


def current() -> KubernetesSettings | None:
    """The settings in force: those of ``flyte.init*``, else (inside a pod the tier started) the pod's."""
    from .._initialize import initialized

    config = initialized()
    if config is not None and config.kubernetes is not None:
        return config.kubernetes  # type: ignore[no-any-return]
    raw = os.environ.get(SETTINGS_ENV)
    if raw:
        return msgspec.json.decode(raw, type=KubernetesSettings)
    return None
