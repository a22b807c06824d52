"""Fault injection (part of the Kubernetes API server test double).

Each armed fault affects the next matching requests and then clears itself, imitating what clients of a real API
server meet: watch streams cut without the final chunk (``drop_watches``), watch streams that go silent
(``stall_watches``), priority-and-fairness throttling (``throttle`` -> 429 TooManyRequests with ``Retry-After``),
server errors (``fail`` -> 500 InternalError / 503 ServiceUnavailable), etcd compaction (``compact`` -> watches
resuming from an older resourceVersion get 410 Expired), ResourceQuota admission rejections (``reject_create`` ->
403 Forbidden; for pods the Job controller then records a ``FailedCreate`` event on the Job), a scheduler that does
not get to new pods (``hold_pods``), and a watch cache that loses events (``swallow_watch_events``: matching events
are not sent while the stream stays open and later bookmarks move past them, so only a GET sees the change). Watch
faults may name a resource (``"pods"``, ``"jobs"``...) and then only affect that resource's streams. Methods are
thread-safe: tests call them from their own thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _RequestFault:
    n: int
    code: int
    reason: str
    message: str
    method: str | None = None
    path_contains: str | None = None
    retry_after: float | None = None
    resource: str | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        if self.path_contains and self.path_contains not in path:
            return False
        return True


@dataclass
class _StreamFault:
    """A fault of one watch stream: once ``after_events`` events (or, when given, ``after_versions`` new versions,
    by events or bookmarks) are sent, it is cut (drop) or goes silent for ``seconds`` (stall) at its next write."""

    after_events: int
    seconds: float = 0.0
    resource: str | None = None
    after_versions: int | None = None

    def due(self, events: int, versions: int) -> bool:
        return versions >= self.after_versions if self.after_versions is not None else events >= self.after_events


@dataclass
class _Swallow:
    n: int
    resource: str
    when: Callable[[str, dict], bool] | None


def _names(rt) -> tuple:
    return rt.plural, rt.singular, rt.kind, rt.group_resource()


class Faults:
    def __init__(self, double=None):
        self._lock = threading.Lock()
        self._double = double
        self._request_faults: list[_RequestFault] = []
        self._drops: list[_StreamFault] = []
        self._stalls: list[_StreamFault] = []
        self._swallows: list[_Swallow] = []
        self.swallowed = 0  # how many watch events were swallowed (a test checks the fault really happened)
        self._log_drops: list[int] = []  # after_lines per armed log-stream drop
        self._creates: list[_RequestFault] = []
        self.pods_held = False

    # ----- arming (test side)
    def drop_watches(self, n: int = 1, after_events: int = 0, resource: str | None = None,
                     after_versions: int | None = None) -> None:
        """The next n watch streams (of ``resource``, if given) are cut abruptly after sending ``after_events``
        events (or ``after_versions`` newer resourceVersions, bookmarks included: so a stream whose objects do not
        change still breaks, at its next bookmark)."""
        with self._lock:
            self._drops += [_StreamFault(after_events, resource=resource, after_versions=after_versions)
                            for _ in range(n)]

    def drop_logs(self, n: int = 1, after_lines: int = 0) -> None:
        """The next n followed log streams are cut abruptly after sending ``after_lines`` lines."""
        with self._lock:
            self._log_drops += [after_lines] * n

    def take_log_drop(self) -> int | None:
        with self._lock:
            return self._log_drops.pop(0) if self._log_drops else None

    def stall_watches(self, n: int = 1, seconds: float = 30, after_events: int = 0, resource: str | None = None,
                      after_versions: int | None = None) -> None:
        """The next n watch streams (of ``resource``, if given) send nothing, not even bookmarks, for ``seconds``
        once they have sent ``after_events`` events (or ``after_versions`` newer resourceVersions, bookmarks
        included)."""
        with self._lock:
            self._stalls += [_StreamFault(after_events, seconds, resource, after_versions) for _ in range(n)]

    def swallow_watch_events(self, resource: str, n: int = 1, when: Callable[[str, dict], bool] | None = None) -> None:
        """The next n watch events of ``resource`` for which ``when(type, object)`` is true (any, without ``when``)
        are not sent; the stream stays open."""
        with self._lock:
            self._swallows.append(_Swallow(n, resource, when))

    def throttle(
        self, n: int = 1, retry_after: float = 1, path_contains: str | None = None, method: str | None = None
    ) -> None:
        with self._lock:
            self._request_faults.append(
                _RequestFault(
                    n,
                    429,
                    "TooManyRequests",
                    "Too many requests, please try again later.",
                    method,
                    path_contains,
                    retry_after,
                )
            )

    def fail(self, n: int = 1, status: int = 500, method: str | None = None, path_contains: str | None = None) -> None:
        if status == 503:
            reason, message = "ServiceUnavailable", "the server is currently unable to handle the request"
        else:
            reason, message = "InternalError", "Internal error occurred: injected by kube_double"
        with self._lock:
            self._request_faults.append(_RequestFault(n, status, reason, message, method, path_contains))

    def reject_create(
        self,
        resource: str,
        n: int = 1,
        status: int = 403,
        message: str = "exceeded quota: compute-resources, requested: pods=1, used: pods=10, limited: pods=10",
    ) -> None:
        with self._lock:
            self._creates.append(_RequestFault(n, status, "Forbidden", message, "POST", resource=resource))

    def compact(self) -> None:
        self._double._store.compact()

    def hold_pods(self, hold: bool = True) -> None:
        self.pods_held = bool(hold)

    def clear(self) -> None:
        with self._lock:
            self._request_faults.clear()
            self._drops.clear()
            self._stalls.clear()
            self._swallows.clear()
            self._log_drops.clear()
            self._creates.clear()
        self.pods_held = False

    def pending(self) -> int:
        """How many armed faults have not happened yet (a test checks that the client really met them)."""
        with self._lock:
            return sum(f.n for f in self._request_faults) + len(self._drops) + len(self._stalls) + len(
                self._log_drops) + sum(
                f.n for f in self._creates)

    # ----- consuming (server side)
    def take_request_fault(self, method: str, path: str) -> _RequestFault | None:
        with self._lock:
            for fault in self._request_faults:
                if fault.matches(method, path):
                    fault.n -= 1
                    if fault.n <= 0:
                        self._request_faults.remove(fault)
                    return fault
        return None

    def take_create_fault(self, rt) -> _RequestFault | None:
        with self._lock:
            for fault in self._creates:
                if fault.resource in (rt.plural, rt.singular, rt.kind, rt.group_resource()):
                    fault.n -= 1
                    if fault.n <= 0:
                        self._creates.remove(fault)
                    return fault
        return None

    def take_drop(self, rt=None) -> _StreamFault | None:
        """The drop armed for a new watch stream of ``rt``, if any (see :meth:`unstruck`)."""
        return self._take_stream_fault(self._drops, rt)

    def take_stall(self, rt=None) -> _StreamFault | None:
        return self._take_stream_fault(self._stalls, rt)

    def unstruck(self, drop: _StreamFault | None, stall: _StreamFault | None) -> None:
        """A stream that took a fault but ended before it struck (it never sent ``after_events`` events) hands it
        back to the next stream: an armed fault counts as met only once a client has really met it."""
        with self._lock:
            if drop is not None:
                self._drops.insert(0, drop)
            if stall is not None:
                self._stalls.insert(0, stall)

    def _take_stream_fault(self, faults: list[_StreamFault], rt) -> _StreamFault | None:
        with self._lock:
            for fault in faults:
                if fault.resource is None or (rt is not None and fault.resource in _names(rt)):
                    faults.remove(fault)
                    return fault
        return None

    def take_swallow(self, rt, type_: str, obj: dict) -> bool:
        """Whether this watch event is to be swallowed (and counted as such)."""
        with self._lock:
            for fault in self._swallows:
                if fault.resource in _names(rt) and (fault.when is None or fault.when(type_, obj)):
                    fault.n -= 1
                    if fault.n <= 0:
                        self._swallows.remove(fault)
                    self.swallowed += 1
                    return True
        return False
