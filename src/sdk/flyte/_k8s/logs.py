"""Following a pod's log into the caller's terminal.

The log is read with ``follow`` and ``timestamps``; when the stream ends while the container still runs (a dropped
connection, an API server restart), it is read again from ``sinceTime`` = the last line's timestamp, skipping the
lines at that timestamp already shown, so nothing is printed twice. Lines are split on bytes and decoded whole, so a
multi-byte character split across network chunks comes out right. After a crash and restart, ``previous=True``
gives the log of the instance that crashed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import Callable
from typing import Any

from .client import ApiError, Kube, cancel_and_wait

Sink = Callable[[str], None]


def terminal_sink(prefix: str) -> Sink:
    def write(line: str) -> None:
        sys.stderr.write(f"{prefix}{line}\n")
        sys.stderr.flush()

    return write


class LogFollower:
    """Follows one container's log until it ends (or :meth:`stop`); ``lines`` keeps what was shown."""

    def __init__(self, kube: Kube, namespace: str, pod: str, container: str, sink: Sink,
                 container_done: Callable[[], bool], idle_timeout: float = 300.0) -> None:
        self._kube = kube
        self._path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
        self._container = container
        self._sink = sink
        self._done = container_done
        self._idle_timeout = idle_timeout
        self._last_stamp = ""
        self._last_key: tuple[str, int] = ("", 0)
        self._seen_at_last_stamp = 0
        self.lines: list[str] = []
        self.reconnects = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self, drain_s: float = 2.0) -> None:
        """Let the stream finish on its own for up to ``drain_s`` (the last lines of a finished container), then
        stop following."""
        if self._task is None:
            return
        if drain_s > 0:
            await asyncio.wait({self._task}, timeout=drain_s)
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        while True:
            query: dict[str, Any] = {"container": self._container, "follow": True, "timestamps": True}
            if self._last_stamp:
                query["sinceTime"] = _seconds(self._last_stamp)
            skip_at_stamp = self._seen_at_last_stamp
            try:
                async for raw in self._kube.stream_lines(self._path, query, idle_timeout=self._idle_timeout):
                    stamp, _, text = raw.rstrip(b"\n").decode("utf-8", errors="replace").partition(" ")
                    key = stamp_key(stamp)
                    if self._last_stamp and key < self._last_key:
                        continue  # sinceTime has second precision: lines before the last one shown
                    if key == self._last_key and skip_at_stamp:
                        skip_at_stamp -= 1
                        continue
                    if key == self._last_key:
                        self._seen_at_last_stamp += 1
                    else:
                        self._last_stamp, self._last_key, self._seen_at_last_stamp = stamp, key, 1
                    self.lines.append(text)
                    self._sink(text)
            except ApiError as exc:
                if exc.status in (400, 404):  # not started yet, or gone
                    if self._done():
                        return
                    await asyncio.sleep(0.5)
                    continue
                raise
            except (ConnectionError, asyncio.TimeoutError, OSError):
                pass
            if self._done():
                return
            self.reconnects += 1
            await asyncio.sleep(0.2)


async def previous_log(kube: Kube, namespace: str, pod: str, container: str, tail: int = 50) -> str:
    """The log of the container's previous (crashed) instance, or "" when there is none."""
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
    lines: list[str] = []
    with contextlib.suppress(ApiError, ConnectionError, asyncio.TimeoutError, OSError):
        async for raw in kube.stream_lines(path, {"container": container, "previous": True, "tailLines": tail},
                                           idle_timeout=10.0):
            lines.append(raw.rstrip(b"\n").decode("utf-8", errors="replace"))
    return "\n".join(lines)


def stamp_key(stamp: str) -> tuple[str, int]:
    """A log line's RFC 3339 timestamp as (whole seconds, nanoseconds), for ordering. Compared as text, stamps are
    wrong: the kubelet writes RFC3339Nano, which trims trailing zeros, so "05.1Z" would sort after "05.12Z"."""
    head, _, rest = stamp.partition(".")
    if not rest:
        return head.rstrip("Z"), 0
    digits = re.match(r"\d*", rest).group()  # the fraction, before the zone ("Z", "+00:00")
    return head, int(digits[:9].ljust(9, "0")) if digits else 0


def _seconds(stamp: str) -> str:
    """An RFC 3339 timestamp cut to whole seconds, the precision ``sinceTime`` takes."""
    head = stamp.split(".")[0]
    return head if head.endswith("Z") else head + "Z"
