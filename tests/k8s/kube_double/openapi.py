"""Minimal OpenAPI v3 discovery (part of the Kubernetes API server test double).

kubectl (``--validate=strict``, the default) reads ``/openapi/v3`` and the group-version documents it lists to find
out whether the server supports server-side field validation (the ``fieldValidation`` query parameter of each
kind's PATCH operation). This module serves exactly that: the root index and, per group-version, one path per
resource whose operations carry ``x-kubernetes-group-version-kind`` and the ``fieldValidation``/``dryRun``
parameters. Schemas of the kinds are not included (``components.schemas`` is empty), so clients that need full
schemas (``kubectl explain``) get nothing useful. ``/openapi/v2`` is not served (404).
"""

from __future__ import annotations

import hashlib

from .resources import Registry


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def root(registry: Registry) -> dict:
    paths = {}
    for group, versions in registry.groups().items():
        for version in versions:
            path = _gv_path(group, version)
            digest = hashlib.sha256(path.encode()).hexdigest()[:32].upper()
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


def group_version(registry: Registry, path: str) -> dict | None:
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[0] == "apis" and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        return None
    params = [
        {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
        for name in ("dryRun", "fieldManager", "fieldValidation")
    ]
    paths = {}
    for rt in registry.types:
        if rt.group != group or version not in rt.versions:
            continue
        gvk = {"group": group, "version": version, "kind": rt.kind}
        prefix = f"/{path.strip('/')}" + ("/namespaces/{namespace}" if rt.namespaced else "")

        def op(action, gvk=gvk):
            return {
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
            }

        paths[f"{prefix}/{rt.plural}"] = {"post": op("post"), "get": op("list")}
        paths[f"{prefix}/{rt.plural}/{{name}}"] = {
            "get": op("get"),
            "put": op("put"),
            "patch": op("patch"),
            "delete": op("delete"),
        }
    if not paths:
        return None
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0-kube-double"},
        "paths": paths,
        "components": {"schemas": {}},
    }
