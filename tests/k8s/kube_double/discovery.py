"""Discovery documents (part of the Kubernetes API server test double).

Serves what kubectl and client libraries read before they talk to resources: ``/version``, ``/api``
(APIVersions), ``/api/v1`` and ``/apis/<group>/<version>`` (APIResourceList with verbs, scope, kind, short names,
categories and the ``<plural>/status`` and ``pods/log`` subresources) and ``/apis`` (APIGroupList with preferred
versions chosen by Kubernetes version priority: GA > beta > alpha, higher numbers first). Only the legacy
(unaggregated) discovery format is served; kubectl falls back to it.
"""

from __future__ import annotations

import re

from .resources import ALL_VERBS, Registry


def version_info() -> dict:
    return {
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0-kube-double",
        "gitCommit": "0" * 40,
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def _priority(version: str):
    match = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", version)
    if not match:
        return (3, 0, 0, version)
    major, stage, minor = match.groups()
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -int(major), -int(minor or 0), version)


def api_versions(host: str) -> dict:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
    }


def group_list(registry: Registry) -> dict:
    groups = []
    for group, versions in registry.groups().items():
        if not group:
            continue
        ordered = sorted(versions, key=_priority)
        groups.append(
            {
                "name": group,
                "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in ordered],
                "preferredVersion": {"groupVersion": f"{group}/{ordered[0]}", "version": ordered[0]},
            }
        )
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group(registry: Registry, name: str) -> dict | None:
    for entry in group_list(registry)["groups"]:
        if entry["name"] == name:
            return {"kind": "APIGroup", "apiVersion": "v1", **entry}
    return None


def resource_list(registry: Registry, group: str, version: str) -> dict | None:
    resources = []
    for rt in registry.types:
        if rt.group != group or version not in rt.versions:
            continue
        entry = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(ALL_VERBS),
        }
        if rt.short_names:
            entry["shortNames"] = rt.short_names
        if rt.categories:
            entry["categories"] = rt.categories
        resources.append(entry)
        for sub in rt.subresources:
            verbs = ["get"] if sub == "log" else ["get", "patch", "update"]
            resources.append(
                {
                    "name": f"{rt.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": "Scale" if sub == "scale" else rt.kind,
                    "verbs": verbs,
                }
            )
    if not resources:
        return None
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
