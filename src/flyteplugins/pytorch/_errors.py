"""Errors of a distributed job, rebuilt in the task process from what the launcher and workers reported."""

from __future__ import annotations

from typing import Any

from flyte.errors import FlyteError
from flyteplugins.kubeflow.local import exception_from_document

SIGNAL_HINTS = {
    "SIGABRT": "an abort in native code: typically an NCCL collective timeout or desync caught by the watchdog, "
               "an NCCL/CUDA error with async error handling on, or an explicit abort()",
    "SIGKILL": "killed from outside, most often by the kernel's OOM killer: the worker ran out of host memory",
    "SIGSEGV": "a crash in native code (a CUDA/NCCL library, a C extension)",
    "SIGBUS": "shared memory exhausted (DataLoader workers): increase /dev/shm (Resources(shm=...))",
    "SIGTERM": "terminated from outside (the agent stopping the group after another worker failed, or preemption)",
}


class TorchJobError(FlyteError, RuntimeError):
    """A distributed PyTorch job failed without a Python exception to re-raise (a worker killed by a signal,
    the agent failing, a deadline)."""


class ZombieWorkersError(TorchJobError):
    """Every worker died but the elastic agent hung; the zombie watchdog stopped the job."""


def _where(failure: dict[str, Any]) -> str:
    document = failure.get("document") or {}
    node = document.get("node_rank")
    node_text = f", node {node}" if node is not None else ""
    return f"rank {failure['rank']} (local rank {failure['local_rank']}{node_text}, pid {failure['pid']})"


def _how(failure: dict[str, Any]) -> str:
    if failure.get("signal"):
        name = failure["signal"]
        hint = SIGNAL_HINTS.get(name)
        text = f"was killed by {name} (exit code {failure['exitcode']})"
        return f"{text}; hint: {hint}" if hint else text
    return f"failed with exit code {failure['exitcode']}"


def root_cause(failures: list[dict[str, Any]]) -> dict[str, Any]:
    """The failure to report: the earliest one that raised a Python exception, else the earliest one."""
    with_exception = [f for f in failures if f.get("document")]
    return min(with_exception or failures, key=lambda f: (f.get("timestamp") or 0, f["rank"]))


def error_from_failures(task_name: str, failures: list[dict[str, Any]]) -> BaseException:
    """The user's own exception (with rank and worker traceback as notes) where it can be rebuilt, else a
    ``RemoteTaskError`` or ``TorchJobError`` that names rank, exit code or signal and a hint."""
    cause = root_cause(failures)
    others = [f"{_where(f)} {_how(f)}" for f in failures if f is not cause]
    summary = f"{task_name}: worker {_where(cause)} {_how(cause)}"
    if others:
        summary += "; also " + "; ".join(others)
    document = cause.get("document")
    if document:
        return exception_from_document(document, summary, f"Worker traceback (rank {cause['rank']})")
    message = summary
    if cause.get("message") and "To enable traceback" not in cause["message"]:
        message += f"\n{cause['message']}"
    return TorchJobError(message)
