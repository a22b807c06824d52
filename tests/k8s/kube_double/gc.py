"""Deletion, finalizers and the garbage collector (part of the Kubernetes API server test double).

Follows the documented deletion semantics:

* An object with ``metadata.finalizers`` is not removed by DELETE: it gets ``deletionTimestamp`` and stays until
  an update/patch removes the last finalizer.
* ``propagationPolicy: Foreground``: the owner gets ``deletionTimestamp`` and the ``foregroundDeletion``
  finalizer; its dependents (objects whose ``ownerReferences`` name the owner's uid) are deleted (recursively, in
  foreground too); when none is left the finalizer is dropped and the owner removed.
* ``Background`` (the default here for every kind, as kubectl's ``--cascade=background``): the owner goes now, the
  garbage collector removes the dependents right after.
* ``Orphan``: dependents stay; their ownerReference to the owner is removed.
* The garbage collector deletes any object whose every ownerReference names a uid that no longer exists (and drops
  dangling references when some owners remain). It runs after every removal and once a second.
* Pods are deleted gracefully: a bound, not yet finished pod gets ``deletionTimestamp`` +
  ``deletionGracePeriodSeconds``; the fake kubelet stops its processes and then removes it. Unbound or finished
  pods, and ``gracePeriodSeconds: 0``, go at once. Deleting a namespace deletes everything in it.

Simplification: the "orphan" finalizer and blockOwnerDeletion are not modelled separately (Orphan is applied
synchronously; Foreground waits for all dependents).
"""

from __future__ import annotations

import asyncio
import copy
from datetime import datetime, timedelta, timezone

from . import errors
from .store import Store, now_rfc3339

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"


class Collector:
    def __init__(self, store: Store, registry):
        self.store = store
        self.registry = registry
        self._kick: asyncio.Event | None = None
        self.pod_killer = None  # set by the kubelet: callable(pod) for pods removed without grace
        store.listeners.append(self._on_event)

    # ----- helpers
    def _on_event(self, key, type_, obj, prev):
        if self._kick is not None and (
            type_ == "DELETED" or obj["metadata"].get("deletionTimestamp") or obj["metadata"].get("ownerReferences")
        ):
            self._kick.set()

    async def run(self):
        self._kick = asyncio.Event()
        while True:
            try:
                await asyncio.wait_for(self._kick.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass
            self._kick.clear()
            await asyncio.sleep(0.01)
            try:
                self.sweep()
            except Exception:  # keep collecting whatever one object does
                import traceback

                traceback.print_exc()

    def dependents(self, uid: str) -> list[tuple[str, dict]]:
        return [
            (key, obj)
            for key, obj in self.store.all_objects()
            if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])
        ]

    # ----- deletion entry point
    def delete(
        self,
        rt,
        namespace: str,
        name: str,
        propagation: str | None = None,
        grace: int | None = None,
        preconditions: dict | None = None,
    ) -> tuple[int, dict, bool]:
        """Return (http code, object, removed_now)."""
        obj = self.store.get(rt.key, namespace, name)
        if obj is None:
            raise errors.not_found(rt, name)
        meta = obj["metadata"]
        if preconditions:
            if preconditions.get("uid") and preconditions["uid"] != meta["uid"]:
                raise errors.conflict(
                    rt,
                    name,
                    f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                    f"UID in object meta: {meta['uid']}",
                )
            if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != meta["resourceVersion"]:
                raise errors.conflict(
                    rt,
                    name,
                    "Precondition failed: ResourceVersion in precondition: "
                    f"{preconditions['resourceVersion']}, ResourceVersion in object meta: "
                    f"{meta['resourceVersion']}",
                )
        propagation = propagation or "Background"
        if rt.key == "/namespaces":
            return self._delete_namespace(rt, obj)
        if rt.key == "/pods":
            return self._delete_pod(rt, obj, propagation, grace)
        return self._delete_generic(rt, obj, propagation)

    def _delete_generic(self, rt, obj, propagation):
        meta = obj["metadata"]
        if propagation == "Orphan":
            self._orphan(meta["uid"])
        finalizers = list(meta.get("finalizers") or [])
        if propagation == "Foreground" and FOREGROUND not in finalizers and not meta.get("deletionTimestamp"):
            finalizers.append(FOREGROUND)
        if finalizers:
            if meta.get("deletionTimestamp") and finalizers == list(meta.get("finalizers") or []):
                return 202, obj, False
            updated = copy.deepcopy(obj)
            updated["metadata"]["finalizers"] = finalizers
            updated["metadata"].setdefault("deletionTimestamp", now_rfc3339())
            updated["metadata"].setdefault("deletionGracePeriodSeconds", 0)
            self.store.update(rt.key, updated)
            if self._kick is not None:
                self._kick.set()
            return 202, updated, False
        final = self.store.remove(rt.key, meta.get("namespace", ""), meta["name"])
        return 200, final, True

    def _delete_pod(self, rt, obj, propagation, grace):
        meta = obj["metadata"]
        spec = obj.get("spec") or {}
        phase = (obj.get("status") or {}).get("phase")
        if grace is None:
            grace = int(spec.get("terminationGracePeriodSeconds", 30))
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            grace = 0
        if propagation == "Orphan":
            self._orphan(meta["uid"])
        if meta.get("deletionTimestamp") and grace > 0:
            return 200, obj, False
        if grace > 0 or meta.get("finalizers") or propagation == "Foreground":
            updated = copy.deepcopy(obj)
            if (
                propagation == "Foreground"
                and FOREGROUND not in (meta.get("finalizers") or [])
                and grace == 0
                and self.dependents(meta["uid"])
            ):
                updated["metadata"].setdefault("finalizers", []).append(FOREGROUND)
            stamp = datetime.now(timezone.utc) + timedelta(seconds=grace)
            updated["metadata"]["deletionTimestamp"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
            updated["metadata"]["deletionGracePeriodSeconds"] = grace
            if grace == 0 and not updated["metadata"].get("finalizers"):
                if self.pod_killer:
                    self.pod_killer(obj)
                final = self.store.remove(rt.key, meta.get("namespace", ""), meta["name"])
                return 200, final, True
            self.store.update(rt.key, updated)
            return 200, updated, False
        if self.pod_killer:
            self.pod_killer(obj)
        final = self.store.remove(rt.key, meta.get("namespace", ""), meta["name"])
        return 200, final, True

    def _delete_namespace(self, rt, obj):
        name = obj["metadata"]["name"]
        for other in self.registry.types:
            if other.namespaced:
                for item in self.store.list(other.key, name):
                    try:
                        self.delete(other, name, item["metadata"]["name"], "Background", 0)
                    except errors.ApiError:
                        pass
        final = self.store.remove(rt.key, "", name)
        return 200, final, True

    def _orphan(self, uid: str) -> None:
        for key, dependent in self.dependents(uid):
            updated = copy.deepcopy(dependent)
            refs = [r for r in updated["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            if refs:
                updated["metadata"]["ownerReferences"] = refs
            else:
                updated["metadata"].pop("ownerReferences", None)
            self.store.update(key, updated)

    def finish(self, key: str, obj: dict) -> bool:
        """Remove an object whose deletion is pending once nothing holds it any more."""
        current = self.store.get(key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if current is None or current["metadata"]["uid"] != obj["metadata"]["uid"]:
            return False
        if current["metadata"].get("finalizers"):
            return False
        self.store.remove(key, current["metadata"].get("namespace", ""), current["metadata"]["name"])
        return True

    def after_update(self, key: str, obj: dict) -> bool:
        """Called by the API after an update/patch; removes a deleting object whose last finalizer went."""
        meta = obj["metadata"]
        if not meta.get("deletionTimestamp") or meta.get("finalizers"):
            return False
        if key == "/pods":
            phase = (obj.get("status") or {}).get("phase")
            if (obj.get("spec") or {}).get("nodeName") and phase not in ("Succeeded", "Failed"):
                return False  # the kubelet still has to stop it; it removes the pod afterwards
        self.store.remove(key, meta.get("namespace", ""), meta["name"])
        return True

    # ----- the collector proper
    def sweep(self) -> None:
        objects = self.store.all_objects()
        for key, obj in objects:
            meta = obj["metadata"]
            if meta.get("deletionTimestamp") and FOREGROUND in (meta.get("finalizers") or []):
                if self.store.get(key, meta.get("namespace", ""), meta["name"]) is not obj:
                    continue
                deps = self.dependents(meta["uid"])
                if not deps:
                    updated = copy.deepcopy(obj)
                    updated["metadata"]["finalizers"] = [f for f in meta["finalizers"] if f != FOREGROUND]
                    self.store.update(key, updated)
                    self.after_update(key, updated)
                    continue
                for dep_key, dep in deps:
                    if dep["metadata"].get("deletionTimestamp"):
                        continue
                    self._delete_quietly(dep_key, dep, "Foreground")
        for key, obj in self.store.all_objects():
            refs = obj["metadata"].get("ownerReferences") or []
            if not refs:
                continue
            alive = [r for r in refs if self.store.by_uid_get(r.get("uid", "")) is not None]
            if not alive:
                if not obj["metadata"].get("deletionTimestamp"):
                    self._delete_quietly(key, obj, "Background")
            elif len(alive) < len(refs):
                updated = copy.deepcopy(obj)
                updated["metadata"]["ownerReferences"] = alive
                self.store.update(key, updated)

    def _delete_quietly(self, key, obj, propagation):
        rt = self.registry.by_key(key)
        try:
            self.delete(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"], propagation)
        except errors.ApiError:
            pass
