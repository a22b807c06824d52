"""``flyte gc``: delete what runs that no longer exist left on the cluster.

Every object the tier creates carries ``app.kubernetes.io/managed-by=flyte-sdk`` and its run's label, and a run's
root call's object also ``flyte.org/root=true``. A run exists while its root object exists and has not finished;
objects of any other run (a controller killed with SIGKILL, a laptop that lost its network) are deleted, by label,
and so are such runs' pods that have no owner left.
"""

from __future__ import annotations

from typing import Any

from .client import Kube
from .names import MANAGED_BY, MANAGER, ROOT_LABEL, RUN_LABEL
from .resources import JobResource, KubernetesResource, _registry
from .settings import current


def _resources() -> list[KubernetesResource]:
    kinds: dict[str, KubernetesResource] = {"batch/v1/jobs": JobResource()}
    for _, resource in _registry:
        kinds.setdefault(f"{resource.api_version}/{resource.plural}", resource)
    return list(kinds.values())


async def collect(dry_run: bool = False) -> list[str]:
    settings = current()
    if settings is None:
        raise ValueError("flyte gc needs the cluster's settings: flyte.init(kubernetes={...}) or a config file with a "
                         "kubernetes section")
    kube = await Kube.connect(settings)
    deleted: list[str] = []
    try:
        found: list[tuple[KubernetesResource, dict[str, Any]]] = []
        for resource in _resources():
            try:
                listed = await kube.request("GET", resource.collection_path(settings.namespace),
                                            query={"labelSelector": f"{MANAGED_BY}={MANAGER}"})
            except Exception as exc:  # noqa: BLE001 - a kind whose CRD is not installed has nothing to collect
                if getattr(exc, "status", None) == 404:
                    continue
                raise
            found += [(resource, item) for item in listed.get("items") or []]
        live_runs = {labels.get(RUN_LABEL) for resource, item in found
                     if (labels := item["metadata"].get("labels") or {}).get(ROOT_LABEL) == "true"
                     and resource.outcome(item) is None and not item["metadata"].get("deletionTimestamp")}
        # Pods go with their owner; one without an owner (its Job deleted with propagation Orphan) is collected
        # as an object of its own.
        pods = await kube.request("GET", f"/api/v1/namespaces/{settings.namespace}/pods",
                                  query={"labelSelector": f"{MANAGED_BY}={MANAGER}"})
        candidates = [(resource.kind, resource.path(settings.namespace, item["metadata"]["name"]), item)
                      for resource, item in found]
        candidates += [("Pod", f"/api/v1/namespaces/{settings.namespace}/pods/{item['metadata']['name']}", item)
                       for item in pods.get("items") or [] if not item["metadata"].get("ownerReferences")]
        for kind, path, item in candidates:
            meta = item["metadata"]
            if (meta.get("labels") or {}).get(RUN_LABEL) in live_runs or meta.get("deletionTimestamp"):
                continue
            deleted.append(f"{kind}/{meta['name']}")
            if not dry_run:
                await kube.delete(path, "Background")
    finally:
        await kube.close()
    return deleted
