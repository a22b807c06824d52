"""Resource types served by the Kubernetes API server test double.

Each :class:`ResourceType` describes one REST resource as discovery documents it (group, versions, plural, kind,
scope, verbs, short names, subresources). The built-in kinds served are core/v1 namespaces, nodes, pods, events,
configmaps, secrets, serviceaccounts, services and batch/v1 jobs; custom resources are added from CRD files by
:mod:`kube_double.crds`. Simplification: all versions of a kind share one storage and "conversion" only rewrites
``apiVersion`` (the CRD ``conversion: None`` strategy).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass
class ResourceType:
    group: str
    versions: list[str]
    plural: str
    singular: str
    kind: str
    namespaced: bool = True
    short_names: list[str] = field(default_factory=list)
    subresources: list[str] = field(default_factory=list)  # e.g. ["status", "log"]
    name_rule: str = "dns1123subdomain"
    builtin: bool = True  # strategic merge patch is only accepted for built-in kinds
    categories: list[str] = field(default_factory=list)
    validators: dict = field(default_factory=dict)  # version -> crds.SchemaValidator
    printer_columns: dict = field(default_factory=dict)  # version -> additionalPrinterColumns
    list_kind: str = ""

    @property
    def key(self) -> str:
        return f"{self.group}/{self.plural}"

    @property
    def storage_version(self) -> str:
        return self.versions[0]

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def api_version(self, version: str | None = None) -> str:
        version = version or self.storage_version
        return f"{self.group}/{version}" if self.group else version

    def group_resource(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def qualified_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind


def builtin_types() -> list[ResourceType]:
    return [
        ResourceType(
            "",
            ["v1"],
            "namespaces",
            "namespace",
            "Namespace",
            namespaced=False,
            short_names=["ns"],
            subresources=["status"],
            name_rule="dns1123label",
        ),
        ResourceType(
            "", ["v1"], "nodes", "node", "Node", namespaced=False, short_names=["no"], subresources=["status"]
        ),
        ResourceType(
            "", ["v1"], "pods", "pod", "Pod", short_names=["po"], subresources=["status", "log"], categories=["all"]
        ),
        ResourceType("", ["v1"], "events", "event", "Event", short_names=["ev"]),
        ResourceType("", ["v1"], "configmaps", "configmap", "ConfigMap", short_names=["cm"]),
        ResourceType("", ["v1"], "secrets", "secret", "Secret"),
        ResourceType("", ["v1"], "serviceaccounts", "serviceaccount", "ServiceAccount", short_names=["sa"]),
        ResourceType(
            "",
            ["v1"],
            "services",
            "service",
            "Service",
            short_names=["svc"],
            subresources=["status"],
            name_rule="dns1035",
            categories=["all"],
        ),
        ResourceType(
            "batch", ["v1"], "jobs", "job", "Job", subresources=["status"], name_rule="job", categories=["all"]
        ),
    ]


class Registry:
    """Looks resource types up by (group, version, plural) and by the loose names tests use."""

    def __init__(self, types: list[ResourceType]):
        self.types: list[ResourceType] = []
        for rt in types:
            self.add(rt)

    def add(self, rt: ResourceType) -> None:
        for existing in self.types:
            if existing.key == rt.key:
                for version in rt.versions:
                    if version not in existing.versions:
                        existing.versions.append(version)
                existing.validators.update(rt.validators)
                existing.printer_columns.update(rt.printer_columns)
                return
        self.types.append(rt)

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        for rt in self.types:
            if rt.group == group and rt.plural == plural and version in rt.versions:
                return rt
        return None

    def by_key(self, key: str) -> ResourceType:
        for rt in self.types:
            if rt.key == key:
                return rt
        raise KeyError(key)

    def resolve(self, name: str) -> ResourceType:
        """'jobs', 'job', 'Job', 'rayjobs', 'rayjobs.ray.io', short names."""
        plural, _, group = name.partition(".")
        for rt in self.types:
            if group and rt.group != group:
                continue
            if plural in (rt.plural, rt.singular, rt.kind, rt.kind.lower()) or plural in rt.short_names:
                return rt
        raise KeyError(name)

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rt in self.types:
            if rt.group == group and rt.kind == kind and version in rt.versions:
                return rt
        return None

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for rt in self.types:
            versions = out.setdefault(rt.group, [])
            for version in rt.versions:
                if version not in versions:
                    versions.append(version)
        return out
