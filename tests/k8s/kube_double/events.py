"""core/v1 Events recorded by the double's controllers (part of the Kubernetes API server test double).

Mirrors client-go's event recorder: an Event named ``<object>.<hex>`` in the object's namespace with
involvedObject, reason, message, type (Normal/Warning), source component, count, first/lastTimestamp; a repeat of
the same (object, type, reason, message) increments ``count`` instead of creating a new Event.
"""

from __future__ import annotations

import secrets

from .store import Store, now_rfc3339


class EventRecorder:
    def __init__(self, store: Store):
        self.store = store

    def record(
        self,
        obj: dict,
        kind: str,
        api_version: str,
        type_: str,
        reason: str,
        message: str,
        component: str = "kubelet",
        field_path: str | None = None,
    ) -> None:
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        if self.store.get("/namespaces", "", namespace) is None:
            return
        for event in self.store.list("/events", namespace):
            involved = event.get("involvedObject") or {}
            if (
                involved.get("uid") == meta.get("uid")
                and event.get("reason") == reason
                and event.get("message") == message
                and event.get("type") == type_
            ):
                import copy

                updated = copy.deepcopy(event)
                updated["count"] = int(updated.get("count", 1)) + 1
                updated["lastTimestamp"] = now_rfc3339()
                self.store.update("/events", updated)
                return
        involved = {
            "kind": kind,
            "namespace": namespace,
            "name": meta["name"],
            "uid": meta.get("uid"),
            "apiVersion": api_version,
            "resourceVersion": meta.get("resourceVersion"),
        }
        if field_path:
            involved["fieldPath"] = field_path
        now = now_rfc3339()
        self.store.create(
            "/events",
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": namespace},
                "involvedObject": involved,
                "reason": reason,
                "message": message,
                "type": type_,
                "source": {"component": component, **({"host": "double-node"} if component == "kubelet" else {})},
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
                "eventTime": None,
                "reportingComponent": component,
                "reportingInstance": "double-node" if component == "kubelet" else "",
            },
        )
