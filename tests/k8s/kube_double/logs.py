"""Container logs (part of the Kubernetes API server test double).

Each container instance's stdout+stderr is captured as raw bytes, split into lines, each line stamped with the time
it was completed (as the CRI log writer does). Bytes are never decoded, so a multibyte UTF-8 character written in
two pieces comes out intact. A trailing line without a newline is kept as written.

``GET /api/v1/namespaces/{ns}/pods/{name}/log`` understands ``container``, ``follow``, ``timestamps``
(RFC3339Nano UTC prefix), ``sinceTime``, ``sinceSeconds``, ``tailLines``, ``limitBytes`` and ``previous``, and
answers the real server's 400s for a waiting container, an unknown container, an ambiguous container and a missing
previous instance. Logs live until the pod object is removed.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

from aiohttp import web

from . import errors


class ContainerLog:
    def __init__(self):
        self.lines: list[tuple[float, bytes]] = []
        self._partial = bytearray()
        self.done = False
        self._changed = asyncio.Event()

    def _notify(self):
        self._changed.set()
        self._changed = asyncio.Event()

    def feed(self, data: bytes) -> None:
        self._partial += data
        now = time.time()
        while True:
            index = self._partial.find(b"\n")
            if index < 0:
                break
            self.lines.append((now, bytes(self._partial[: index + 1])))
            del self._partial[: index + 1]
        self._notify()

    def close(self) -> None:
        if self._partial:
            self.lines.append((time.time(), bytes(self._partial)))
            self._partial.clear()
        self.done = True
        self._notify()

    async def wait_change(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass


def format_timestamp(ts: float) -> bytes:
    moment = datetime.fromtimestamp(ts, timezone.utc)
    nanos = int(round((ts - int(ts)) * 1e9))
    if nanos >= 1_000_000_000:
        nanos = 999_999_999
    # Go's RFC3339Nano, as the kubelet writes it: trailing zeros of the fraction trimmed, no fraction when zero.
    fraction = f"{nanos:09d}".rstrip("0")
    return (moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z ").encode()


def parse_time(text: str) -> float:
    text = text.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python's fromisoformat wants at most 6 fractional digits
    if "." in text:
        head, rest = text.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        tail = rest[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{tail}"
    return datetime.fromisoformat(text).timestamp()


async def serve(request: web.Request, pod: dict, instances: dict, waiting_reason, faults=None) -> web.StreamResponse:
    """instances: container name -> list[ContainerLog] (oldest first)."""
    params = request.query
    name = pod["metadata"]["name"]
    spec = pod.get("spec") or {}
    containers = [c["name"] for c in spec.get("containers") or []]
    init = [c["name"] for c in spec.get("initContainers") or []]
    container = params.get("container")
    if not container:
        if len(containers) != 1:
            message = f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
            if init:
                message += f" or one of the init containers: [{' '.join(init)}]"
            raise errors.bad_request(message)
        container = containers[0]
    if container not in containers + init:
        raise errors.bad_request(f"container {container} is not valid for pod {name}")
    history = instances.get(container) or []
    if params.get("previous") in ("true", "1"):
        # The kubelet reads the instance of the container's lastState: while it waits in CrashLoopBackOff that is
        # the latest instance (none newer has started), else the one before the latest.
        # A newest instance still running is no lastState, whatever the (possibly older) pod status says: the
        # kubelet may have started it just after the status read here showed CrashLoopBackOff.
        backing_off = waiting_reason(container) == "CrashLoopBackOff" and bool(history) and history[-1].done
        if len(history) < (1 if backing_off else 2):
            raise errors.bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
        log = history[-1] if backing_off else history[-2]
    else:
        if not history:
            reason = waiting_reason(container) or "ContainerCreating"
            raise errors.bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        log = history[-1]
    follow = params.get("follow") in ("true", "1")
    timestamps = params.get("timestamps") in ("true", "1")
    since = None
    if params.get("sinceTime"):
        try:
            since = parse_time(params["sinceTime"])
        except ValueError:
            raise errors.bad_request(f"invalid sinceTime: {params['sinceTime']!r}") from None
    elif params.get("sinceSeconds"):
        since = time.time() - int(params["sinceSeconds"])
    tail = int(params["tailLines"]) if params.get("tailLines") not in (None, "") else None
    limit = int(params["limitBytes"]) if params.get("limitBytes") not in (None, "") else None

    response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
    if follow:
        response.enable_chunked_encoding()
    await response.prepare(request)
    written = 0

    def select(lines):
        chosen = [(ts, line) for ts, line in lines if since is None or ts >= since]
        return chosen

    async def emit(lines) -> bool:
        nonlocal written
        chunk = b"".join((format_timestamp(ts) if timestamps else b"") + line for ts, line in lines)
        if limit is not None:
            chunk = chunk[: max(limit - written, 0)]
        if chunk:
            await response.write(chunk)
            written += len(chunk)
        return limit is not None and written >= limit

    drop_after = faults.take_log_drop() if follow and faults is not None else None
    if drop_after is not None:
        sent = 0
        plain_emit = emit

        async def emit(lines) -> bool:  # noqa: F811 - the same, cut after `drop_after` lines
            nonlocal sent
            room = drop_after - sent
            await plain_emit(lines[:room])
            sent += min(len(lines), room)
            if sent >= drop_after:
                raise _Cut()
            return False

    try:
        return await _stream(response, log, select, emit, tail, follow)
    except ConnectionResetError:  # the client went away
        return response
    except _Cut:  # a fault: the connection drops without the stream's end
        request.transport.close()
        return response


class _Cut(Exception):
    pass


async def _stream(response, log, select, emit, tail, follow):
    first = select(log.lines)
    if tail is not None:
        first = first[-tail:] if tail > 0 else []
    position = len(log.lines)
    finished = await emit(first)
    while follow and not finished:
        if position >= len(log.lines):
            if log.done:
                break
            await log.wait_change(1.0)
            continue
        fresh = log.lines[position:]
        position += len(fresh)
        finished = await emit(select(fresh))
    await response.write_eof()
    return response
