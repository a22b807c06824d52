"""Errors of a TensorFlow job, rebuilt in the task process from how its replicas ended."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from flyte.errors import FlyteError

from ._cluster import Replica

SIGNAL_HINTS = {
    "SIGKILL": "killed from outside, most often by the kernel's OOM killer: the replica ran out of memory",
    "SIGABRT": "an abort in native code: a failed TensorFlow CHECK or an explicit abort()",
    "SIGSEGV": "a crash in native code (a TensorFlow kernel, a C extension)",
    "SIGBUS": "shared memory exhausted: increase /dev/shm (Resources(shm=...))",
    "SIGTERM": "terminated from outside (preemption, or a process manager)",
}


class TfJobError(FlyteError, RuntimeError):
    """A TensorFlow job failed without a Python exception to re-raise (a replica killed by a signal, a deadline)."""


@dataclass(frozen=True)
class Ended:
    """A replica that exited: how, and the error document its runtime left (``error.json``), if any."""

    replica: Replica
    pid: int
    code: int
    error_document: str | None

    def how(self) -> str:
        if self.code < 0:
            try:
                name = signal.Signals(-self.code).name
            except ValueError:
                name = f"signal {-self.code}"
            hint = SIGNAL_HINTS.get(name)
            return f"was killed by {name} (exit code {self.code})" + (f"; hint: {hint}" if hint else "")
        return f"failed with exit code {self.code}"

    def describe(self) -> str:
        return f"{self.replica} (pid {self.pid}) {self.how()}"


def root_cause(failures: list[Ended]) -> Ended:
    """The failure to report: the earliest that left an error document (the others often fail because of it, a
    collective whose peer went away), else the first seen."""
    documented = [f for f in failures if f.error_document]
    if documented:
        return min(documented, key=lambda f: (os.path.getmtime(f.error_document or ""), f.replica))
    return failures[0]


def job_error(task_name: str, failures: list[Ended]) -> BaseException:
    """The failed replica's own exception (its type kept, the replica and its traceback as notes) where its runtime
    wrote one, else a :class:`TfJobError` naming the replica and its exit code or signal."""
    from flyte.runtime import error_from_document

    cause = root_cause(failures)
    summary = f"{task_name}: replica {cause.describe()}"
    others = [f.describe() for f in failures if f is not cause]
    if others:
        summary += "; also " + "; ".join(others)
    summary += "; the other replicas were stopped"
    if cause.error_document:
        with open(cause.error_document, "rb") as handle:
            error = error_from_document(handle.read())
        if isinstance(error, Exception):
            error.add_note(summary)
            return error
        # SystemExit, KeyboardInterrupt in a replica: the caller must not exit or stop for it
        return TfJobError(f"{summary}\n{type(error).__name__}: {error}")
    return TfJobError(summary)
