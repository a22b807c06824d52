"""A cache of the objects of one collection (a run's Jobs, its pods), kept current by list-then-watch.

The protocol, as Kubernetes documents it for controllers: list (which gives a resourceVersion), then watch from
that version with bookmarks and a server-side timeout; when the stream ends, resume from the last version seen
(events or bookmarks); on 410 Gone (the version was compacted away) list again; a stream that stays silent past
``stall_timeout`` (no event, no bookmark) or breaks is dropped and resumed. Calls waiting on the cache wake on
every change (``on_change``), and :meth:`refresh` (a plain GET) lets them check an object directly as a backstop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from .client import ApiError, Kube, cancel_and_wait

log = logging.getLogger("flyte.k8s")


class Informer:
    def __init__(self, kube: Kube, collection: str, label_selector: str, *, server_timeout: int = 60,
                 stall_timeout: float = 90.0, on_change: Callable[[], None] | None = None) -> None:
        self._kube = kube
        self.collection = collection
        self.label_selector = label_selector
        self.server_timeout = server_timeout
        self.stall_timeout = stall_timeout
        self.objects: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self._on_change = on_change
        self._version = ""
        self._task: asyncio.Task[None] | None = None
        self._streamed = False  # whether the current watch got anything from the server
        self.relists = 0  # how often the cache was rebuilt from a list (410s, first sync): for tests and logs
        self.resumes = 0  # how often a watch was resumed after a timeout, drop or stall

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    def _notify(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def store(self, obj: dict[str, Any]) -> None:
        """Put an object seen elsewhere (a create's response, a GET) into the cache if it is newer."""
        name = obj["metadata"]["name"]
        known = self.objects.get(name)
        if known is None or _rv(obj) >= _rv(known):
            self.objects[name] = obj
            self._notify()

    def forget(self, name: str) -> None:
        if self.objects.pop(name, None) is not None:
            self.deleted.add(name)
            self._notify()

    async def refresh(self, name: str) -> dict[str, Any] | None:
        """GET one object now (the backstop for a watch that missed something)."""
        obj = await self._kube.get(f"{self.collection}/{name}")
        if obj is None:
            if name in self.objects:
                self.forget(name)
        else:
            self.store(obj)
        return obj

    async def refresh_matching(self, selector: str) -> None:
        """List the objects that also match ``selector`` now and take them in (the backstop for objects the watch
        has not shown yet, when their names are not known)."""
        listed = await self._kube.request("GET", self.collection,
                                          query={"labelSelector": f"{self.label_selector},{selector}"})
        for obj in listed.get("items") or []:
            self.store(obj)

    async def _list(self) -> None:
        listed = await self._kube.request("GET", self.collection, query={"labelSelector": self.label_selector})
        self.relists += 1
        fresh = {item["metadata"]["name"]: item for item in listed.get("items") or []}
        for name in set(self.objects) - set(fresh):
            self.deleted.add(name)
        self.objects = fresh
        self._version = listed.get("metadata", {}).get("resourceVersion", "")
        self._notify()

    async def _run(self) -> None:
        backoff = 0.2
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                self._streamed = False
                await self._watch()
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except _Gone:
                log.debug("watch %s: resourceVersion %s expired, listing again", self.collection, self._version)
                need_list = True
            except (ConnectionError, asyncio.TimeoutError, OSError) as exc:
                log.debug("watch %s: %s; resuming from %s", self.collection, type(exc).__name__, self._version)
                self.resumes += 1
                if not self._streamed:  # the server cannot be reached at all: back off instead of spinning
                    await asyncio.sleep(backoff)
                    backoff = min(5.0, backoff * 2)
            except ApiError as exc:
                if exc.status == 410:
                    need_list = True
                    continue
                log.warning("watch %s: %s", self.collection, exc)
                await asyncio.sleep(backoff)
                backoff = min(5.0, backoff * 2)
            except Exception as exc:  # noqa: BLE001 - keep watching whatever a stream did; calls have the backstop
                log.warning("watch %s: unexpected %s: %s", self.collection, type(exc).__name__, exc)
                await asyncio.sleep(backoff)
                backoff = min(5.0, backoff * 2)

    async def _watch(self) -> None:
        query = {"watch": True, "labelSelector": self.label_selector, "resourceVersion": self._version,
                 "allowWatchBookmarks": True, "timeoutSeconds": self.server_timeout}
        async for line in self._kube.stream_lines(self.collection, query, idle_timeout=self.stall_timeout):
            self._streamed = True
            if not line.strip():
                continue
            event = json.loads(line)
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise _Gone()
                raise ApiError(int(obj.get("code") or 500), obj.get("reason", "Error"), obj.get("message", ""), obj)
            version = (obj.get("metadata") or {}).get("resourceVersion")
            if version:
                self._version = version
            if kind == "BOOKMARK":
                continue
            name = obj["metadata"]["name"]
            if kind == "DELETED":
                self.objects.pop(name, None)
                self.deleted.add(name)
                self._notify()
            else:
                self.objects[name] = obj
                self.deleted.discard(name)
                self._notify()
        self.resumes += 1  # the server closed the stream (its timeoutSeconds): resume from the last version


class _Gone(Exception):
    pass


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0
