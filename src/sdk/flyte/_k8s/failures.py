"""Why a remote call's pod failed, as the error the caller gets.

A pod that cannot start (an image that cannot be pulled, a missing Secret, no node with room) fails the call with
the reason and the pod's recent Events; a container that ended without an error document (the runtime writes one
for every exception it sees) is described by its termination: ``OOMKilled`` becomes :class:`flyte.errors.OOMError`,
a signal or an exit code is named.
"""

from __future__ import annotations

import signal
from typing import Any

from ..errors import ImagePullBackOffError, InvalidImageNameError, OOMError, RuntimeSystemError, RuntimeUserError

# Waiting reasons after which a container will not start without someone changing something.
START_FAILURES = {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError",
                  "CreateContainerError", "ErrImageNeverPull", "RunContainerError"}
IMMEDIATE = {"InvalidImageName", "ErrImageNeverPull"}


def start_problem(pod: dict[str, Any] | None) -> tuple[str, str] | None:
    """(reason, message) when the pod is stuck before its primary container runs; None otherwise."""
    if pod is None:
        return None
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            if condition.get("reason") == "Unschedulable":
                return "Unschedulable", condition.get("message", "")
    for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in START_FAILURES:
            return waiting["reason"], waiting.get("message", "")
    return None


def start_error(reason: str, message: str, pod_name: str, events: list[dict[str, Any]]) -> Exception:
    text = f"pod {pod_name} could not start: {reason}" + (f": {message}" if message else "")
    if events:
        text += "\nRecent events:\n" + "\n".join(describe_event(e) for e in events[-8:])
    if reason in ("ImagePullBackOff", "ErrImagePull", "ErrImageNeverPull"):
        return ImagePullBackOffError(reason, text)
    if reason == "InvalidImageName":
        return InvalidImageNameError(reason, text)
    if reason == "Unschedulable":
        return RuntimeUserError("Unschedulable", text)
    return RuntimeUserError(reason, text)


def describe_event(event: dict[str, Any]) -> str:
    count = event.get("count") or 1
    return (f"  {event.get('type', 'Normal')} {event.get('reason', '')}"
            f"{f' (x{count})' if count > 1 else ''}: {event.get('message', '')}")


def termination(pod: dict[str, Any], container: str) -> dict[str, Any] | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            return (status.get("state") or {}).get("terminated") or (status.get("lastState") or {}).get("terminated")
    return None


def exit_error(pod: dict[str, Any], container: str, log_tail: str = "") -> Exception:
    """The error of a container that ended without leaving an error document."""
    name = pod["metadata"]["name"]
    ended = termination(pod, container) or {}
    code = ended.get("exitCode")
    reason = ended.get("reason") or (pod.get("status") or {}).get("reason") or "Error"
    tail = f"\nLast lines of its log:\n{log_tail}" if log_tail else ""
    if reason == "OOMKilled":
        limit = _memory_limit(pod, container)
        return OOMError("OOMKilled", f"pod {name}: container {container} was killed for using more memory than its "
                                     f"limit{f' ({limit})' if limit else ''} (exit code {code}){tail}")
    signal_number = ended.get("signal") or (code - 128 if isinstance(code, int) and code > 128 else None)
    if signal_number:
        try:
            signal_name = signal.Signals(signal_number).name
        except ValueError:
            signal_name = f"signal {signal_number}"
        return RuntimeSystemError(reason, f"pod {name}: container {container} was killed by {signal_name} "
                                          f"(exit code {code}){tail}")
    message = ended.get("message") or (pod.get("status") or {}).get("message") or ""
    return RuntimeSystemError(reason, f"pod {name}: container {container} exited with code {code} ({reason})"
                                      f"{': ' + message if message else ''}{tail}")


def _memory_limit(pod: dict[str, Any], container: str) -> str | None:
    for spec in (pod.get("spec") or {}).get("containers") or []:
        if spec.get("name") == container:
            return ((spec.get("resources") or {}).get("limits") or {}).get("memory")
    return None
