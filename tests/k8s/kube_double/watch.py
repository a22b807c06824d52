"""Watch streams (part of the Kubernetes API server test double).

Serves ``?watch=true`` on list endpoints the way the real API server does: a chunked ``application/json`` response
with one ``{"type": ..., "object": ...}`` JSON document per line.

* ``resourceVersion`` absent, ``""`` or ``"0"``: synthetic ADDED events for the current objects, then live events.
* ``resourceVersion=N``: every event after N (from the bounded history), then live events; if N is older than the
  history (compacted), one in-stream ``ERROR`` event carrying a 410 Expired Status, then the stream ends. A version
  newer than the current one just waits.
* label/field selectors apply; an object that stops matching is reported as DELETED, one that starts matching as
  ADDED (as the watch cache does). DELETED events carry the final state of the object.
* ``allowWatchBookmarks=true``: a BOOKMARK event with the current resourceVersion every ``bookmark_interval_s``.
* ``timeoutSeconds``: the stream ends cleanly after that long.
* faults: a dropped stream is cut without the final chunk; a stalled one sends nothing for a while; a swallowed
  event is not sent (the stream goes on).

Every stream is recorded in ``KubeDouble.watches`` (resource, the resourceVersion it was asked to start from, the
last resourceVersion it sent in an event or bookmark, how it ended), so tests can check how a client resumed.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from . import errors
from .api import matches
from .store import ExpiredError


def _line(type_: str, obj: dict) -> bytes:
    return json.dumps({"type": type_, "object": obj}, separators=(",", ":")).encode() + b"\n"


async def serve_watch(
    request: web.Request, double, rt, version: str, namespace: str | None, params
) -> web.StreamResponse:
    api = double._api
    store = double._store
    labels_req, fields_req = api.selectors(rt, params.get("labelSelector"), params.get("fieldSelector"))
    rv_param = params.get("resourceVersion", "")
    if rv_param in ("", "0"):
        since = None
    else:
        try:
            since = int(rv_param)
        except ValueError:
            raise errors.bad_request(f"invalid resource version: {rv_param!r}") from None
    timeout = params.get("timeoutSeconds")
    deadline = time.monotonic() + float(timeout) if timeout not in (None, "") else None
    bookmarks = params.get("allowWatchBookmarks") in ("true", "1", "True")
    drop = double.faults.take_drop(rt)
    stall = double.faults.take_stall(rt)
    record = {"resource": rt.plural, "since": rv_param, "last_sent": None, "events": 0, "ended": None}
    double.watches.append(record)

    response = web.StreamResponse(
        status=200, headers={"Content-Type": "application/json", "Cache-Control": "no-cache, private"}
    )
    response.enable_chunked_encoding()
    await response.prepare(request)

    def in_scope(obj):
        return namespace is None or not rt.namespaced or obj["metadata"].get("namespace") == namespace

    def visible(obj):
        return obj is not None and in_scope(obj) and matches(labels_req, fields_req, obj)

    def translate(event):
        _, _, type_, obj, prev = event
        if type_ == "MODIFIED":
            now, before = visible(obj), visible(prev)
            if now and before:
                return "MODIFIED"
            if now:
                return "ADDED"
            if before:
                return "DELETED"
            return None
        return type_ if visible(obj) else None

    try:
        watcher, replay, snapshot, _ = store.open_watch(rt.key, since)
    except ExpiredError as exc:
        double.faults.unstruck(drop, stall)
        status = errors.expired(f"too old resource version: {since} ({exc.oldest + 1})").status()
        await response.write(_line("ERROR", status))
        await response.write_eof()
        record["ended"] = "expired"
        return response

    sent = versions = 0  # events sent; newer versions sent (by events or bookmarks)
    delivered = since or 0
    try:
        if stall is not None and stall.due(0, 0):
            record["ended"] = "stalled"
            stall, seconds = None, stall.seconds
            await asyncio.sleep(seconds)

        async def fault_point():
            # An armed cut or silence strikes at the next write once enough events went out, bookmarks included:
            # a quiet stream (a task that just runs) breaks as surely as a busy one.
            nonlocal drop, stall
            if drop is not None and drop.due(sent, versions):
                drop = None
                raise _Drop()
            if stall is not None and stall.due(sent, versions):
                record["ended"] = "stalled"
                stall, seconds = None, stall.seconds
                await asyncio.sleep(seconds)

        async def send(type_, obj):
            nonlocal sent, versions, delivered
            if double.faults.take_swallow(rt, type_, obj):
                return
            await fault_point()
            await response.write(_line(type_, api.render(rt, version, obj)))
            sent += 1
            versions += 1
            delivered = max(delivered, int(obj["metadata"].get("resourceVersion") or 0))
            record["events"] = sent
            record["last_sent"] = obj["metadata"].get("resourceVersion")

        if drop is not None and drop.due(0, 0):
            drop = None
            raise _Drop()
        for obj in snapshot or []:
            if visible(obj):
                await send("ADDED", obj)
        for event in replay:
            kind = translate(event)
            if kind:
                await send(kind, event[3])
        last_bookmark = time.monotonic()
        interval = double.bookmark_interval_s
        while True:
            now = time.monotonic()
            wait = 3600.0
            if deadline is not None:
                wait = min(wait, deadline - now)
            if bookmarks:
                wait = min(wait, last_bookmark + interval - now)
            if deadline is not None and deadline - now <= 0:
                break
            try:
                # Queued events go out first. Waiting with a bookmark overdue (wait <= 0) times out at once on
                # Python < 3.12, even with events queued: the stream would spin without sending them.
                event = watcher.queue.get_nowait() if not watcher.queue.empty() else \
                    await asyncio.wait_for(watcher.queue.get(), timeout=max(wait, 0.0))
            except asyncio.TimeoutError:
                if bookmarks and time.monotonic() >= last_bookmark + interval and watcher.queue.empty():
                    await fault_point()
                    await response.write(
                        _line(
                            "BOOKMARK",
                            {
                                "kind": rt.kind,
                                "apiVersion": rt.api_version(version),
                                "metadata": {"resourceVersion": str(store.rv)},
                            },
                        )
                    )
                    record["last_sent"] = str(store.rv)
                    if store.rv > delivered:
                        versions, delivered = versions + 1, store.rv
                    last_bookmark = time.monotonic()
                continue
            kind = translate(event)
            if kind:
                await send(kind, event[3])
    except _Drop:
        record["ended"] = "dropped"
        transport = request.transport
        if transport is not None:
            transport.abort()
        return response
    except ConnectionResetError:  # the client went away
        record["ended"] = record["ended"] or "client closed"
        return response
    finally:
        store.close_watch(watcher)
        double.faults.unstruck(drop, stall)
    record["ended"] = "timeout"
    await response.write_eof()
    return response


class _Drop(Exception):
    pass
