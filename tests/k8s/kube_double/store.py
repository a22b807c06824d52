"""Object storage and the watch event history (part of the Kubernetes API server test double).

Like etcd behind the real API server, the store keeps every object under one global, monotonically increasing
``resourceVersion`` (an integer rendered as a string, bumped on every write), and keeps a bounded history of change
events (ADDED / MODIFIED / DELETED, each with the object before the change) that watches are served from. Events
older than the history window are "compacted": a watch that wants to resume before them gets 410 Expired.

Simplifications: everything is in memory; all writes happen on the double's event loop thread (a lock protects
reads from other threads, e.g. ``KubeDouble.objects``).
"""

from __future__ import annotations

import asyncio
import copy
import threading
import uuid
from collections import deque
from datetime import datetime, timezone


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Watcher:
    def __init__(self, key: str):
        self.key = key
        self.queue: asyncio.Queue = asyncio.Queue()


class Store:
    def __init__(self, history_size: int = 2000):
        self.lock = threading.RLock()
        self.rv = 1
        self.objects: dict[str, dict[tuple[str, str], dict]] = {}
        self.by_uid: dict[str, tuple[str, str, str]] = {}
        self.history: deque = deque()
        self.history_size = history_size
        self.compacted_rv = 0  # events with rv <= compacted_rv are no longer available
        self.watchers: set[Watcher] = set()
        self.listeners: list = []  # callables (key, type, obj, prev), run synchronously after a write

    # ----- reads
    def get(self, key: str, namespace: str, name: str) -> dict | None:
        with self.lock:
            return self.objects.get(key, {}).get((namespace or "", name))

    def list(self, key: str, namespace: str | None = None) -> list[dict]:
        with self.lock:
            items = [obj for (ns, _), obj in self.objects.get(key, {}).items() if namespace in (None, ns)]
        return sorted(items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def by_uid_get(self, uid: str) -> tuple[str, dict] | None:
        with self.lock:
            where = self.by_uid.get(uid)
            if not where:
                return None
            key, ns, name = where
            obj = self.objects.get(key, {}).get((ns, name))
            return (key, obj) if obj is not None else None

    def all_objects(self):
        with self.lock:
            return [(key, obj) for key, objs in self.objects.items() for obj in list(objs.values())]

    def snapshot(self, key: str, namespace: str | None = None) -> list[dict]:
        with self.lock:
            return copy.deepcopy(self.list(key, namespace))

    # ----- writes
    def _bump(self) -> str:
        self.rv += 1
        return str(self.rv)

    def create(self, key: str, obj: dict) -> dict:
        with self.lock:
            meta = obj.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_rfc3339())
            meta.setdefault("generation", 1)
            meta["resourceVersion"] = self._bump()
            ns = meta.get("namespace", "")
            self.objects.setdefault(key, {})[(ns, meta["name"])] = obj
            self.by_uid[meta["uid"]] = (key, ns, meta["name"])
            self._record(key, "ADDED", obj, None)
            return obj

    def update(self, key: str, obj: dict) -> dict:
        """Replace the stored object (same namespace/name); bumps resourceVersion and, on spec changes, generation."""
        with self.lock:
            meta = obj["metadata"]
            ns = meta.get("namespace", "")
            prev = self.objects[key][(ns, meta["name"])]
            if _spec_part(prev) != _spec_part(obj):
                meta["generation"] = int(prev["metadata"].get("generation", 1)) + 1
            else:
                meta["generation"] = prev["metadata"].get("generation", 1)
            meta["resourceVersion"] = self._bump()
            self.objects[key][(ns, meta["name"])] = obj
            self._record(key, "MODIFIED", obj, prev)
            return obj

    def remove(self, key: str, namespace: str, name: str) -> dict | None:
        with self.lock:
            prev = self.objects.get(key, {}).pop((namespace or "", name), None)
            if prev is None:
                return None
            final = copy.deepcopy(prev)
            final["metadata"]["resourceVersion"] = self._bump()
            self.by_uid.pop(final["metadata"]["uid"], None)
            self._record(key, "DELETED", final, prev)
            return final

    def _record(self, key: str, type_: str, obj: dict, prev: dict | None) -> None:
        event = (int(obj["metadata"]["resourceVersion"]), key, type_, copy.deepcopy(obj), prev)
        self.history.append(event)
        while len(self.history) > self.history_size:
            dropped = self.history.popleft()
            self.compacted_rv = dropped[0]
        for watcher in list(self.watchers):
            if watcher.key == key:
                watcher.queue.put_nowait(event)
        for listener in list(self.listeners):
            listener(key, type_, obj, prev)

    def compact(self) -> None:
        with self.lock:
            self.history.clear()
            self.compacted_rv = self.rv

    # ----- watches
    def open_watch(self, key: str, since: int | None):
        """Register a watcher; return (watcher, replay_events, snapshot_or_None, current_rv) or raise Expired.

        ``since`` None means "start with synthetic ADDED events for the current state".
        """
        with self.lock:
            watcher = Watcher(key)
            if since is None:
                snapshot = copy.deepcopy(self.list(key))
                replay = []
            else:
                if since < self.compacted_rv:
                    raise ExpiredError(since, self.compacted_rv)
                snapshot = None
                replay = [e for e in self.history if e[1] == key and e[0] > since]
            self.watchers.add(watcher)
            return watcher, replay, snapshot, self.rv

    def close_watch(self, watcher: Watcher) -> None:
        with self.lock:
            self.watchers.discard(watcher)


class ExpiredError(Exception):
    def __init__(self, requested: int, oldest: int):
        super().__init__(f"too old resource version: {requested} ({oldest + 1})")
        self.requested = requested
        self.oldest = oldest


def _spec_part(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}
