"""Why a remote call's pod failed, as the error the caller gets.

A pod that cannot start (an image that cannot be pulled, a missing Secret, no node with room) fails the call with
the reason and the pod's recent Events; so does a pod that could not even be created (a ResourceQuota refusing the
Job controller's create leaves no pod, only a ``FailedCreate`` Warning event on the Job); a container that ended
without an error document (the runtime writes one for every exception it sees) is described by its termination:
``OOMKilled`` becomes :class:`flyte.errors.OOMError`, a signal or an exit code is named.
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
    text = _with_events(f"pod {pod_name} could not start: {reason}" + (f": {message}" if message else ""), events)
    if reason in ("ImagePullBackOff", "ErrImagePull", "ErrImageNeverPull"):
        return ImagePullBackOffError(reason, text)
    if reason == "InvalidImageName":
        return InvalidImageNameError(reason, text)
    if reason == "Unschedulable":
        return RuntimeUserError("Unschedulable", text)
    return RuntimeUserError(reason, text)


def creation_problem(events: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(reason, message) when the latest word of an object's controller about creating its pods is a refusal: a
    Warning ``FailedCreate`` (Job controller) or ``FailedCreatePod`` (Kubeflow operators) event with no later
    ``SuccessfulCreate``. ``ExceededQuota`` when a ResourceQuota refused it."""
    latest = None
    for event in sorted(events, key=_event_order):
        reason = event.get("reason") or ""
        if reason.startswith(("FailedCreate", "SuccessfulCreate")):
            latest = event
    if latest is None or latest.get("type") != "Warning" or not latest["reason"].startswith("FailedCreate"):
        return None
    message = latest.get("message") or ""
    return ("ExceededQuota" if "exceeded quota" in message else latest["reason"]), message


def creation_error(kind: str, name: str, reason: str, message: str, events: list[dict[str, Any]]) -> Exception:
    text = f"{kind} {name} could not create its pod: {reason}" + (f": {message}" if message else "")
    return RuntimeUserError(reason, _with_events(text, events))


def _with_events(text: str, events: list[dict[str, Any]]) -> str:
    return text + ("\nRecent events:\n" + "\n".join(describe_event(e) for e in events[-8:]) if events else "")


def _event_order(event: dict[str, Any]) -> tuple[str, int]:
    # Stamps have whole seconds; the resourceVersion orders events recorded within one second.
    try:
        version = int((event.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        version = 0
    return event.get("lastTimestamp") or event.get("eventTime") or "", version


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
        hint = _SIGNAL_HINTS.get(signal_name)
        return RuntimeSystemError(signal_name, f"pod {name}: container {container} was killed by {signal_name} "
                                               f"(exit code {code}) before reporting a result"
                                               f"{f'; {hint}' if hint else ''}{tail}")
    message = ended.get("message") or (pod.get("status") or {}).get("message") or ""
    return RuntimeSystemError(f"ExitCode{code}" if isinstance(code, int) else reason,
                              f"pod {name}: container {container} exited with code {code} before reporting a result "
                              "or an error (the process ended abruptly: os._exit(), a crash in native code, or a "
                              f"wrapper's exit status){': ' + message if message else ''}{tail}")


# What usually sends a signal that kills a task's process, for the error message.
_SIGNAL_HINTS = {
    "SIGKILL": "SIGKILL cannot be caught: os.kill (by the task or another process), the kernel's OOM killer (the "
               "node ran out of memory, not the container's limit) or a forced stop sends it",
    "SIGTERM": "it was asked to stop (the pod was deleted or evicted)",
    "SIGSEGV": "a crash in native code (a C extension or a library it loads)",
    "SIGABRT": "native code aborted (a failed assertion in a C library)",
    "SIGBUS": "a crash in native code, or /dev/shm too small for what was written to it",
}


def _memory_limit(pod: dict[str, Any], container: str) -> str | None:
    for spec in (pod.get("spec") or {}).get("containers") or []:
        if spec.get("name") == container:
            return ((spec.get("resources") or {}).get("limits") or {}).get("memory")
    return None
