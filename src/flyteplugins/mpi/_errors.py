"""Errors of an MPI job, rebuilt in the task process from the ranks' reports and what ``mpirun`` said."""

from __future__ import annotations

import re
import signal
from typing import Any

from flyte.errors import FlyteError
from flyteplugins.kubeflow.local import exception_from_document

# What Open MPI 5's prterun (and Open MPI 4's mpirun) print when a rank ends the job.
_EXIT_CODE = re.compile(r"Process name:\s*\[[^\]]*?,(\d+)\]\s*Exit code:\s*(\d+)", re.S)
_SIGNAL = re.compile(r"process rank (\d+) with PID (\d+) on node (\S+) exited on\s+signal (\d+)(?: \(([^)]*)\))?")
_IMPROPER = re.compile(r"process rank (\d+) with PID (\d+) on node (\S+) exiting\s+improperly")
_ABORT = re.compile(r"MPI_ABORT was invoked on rank (\d+) in communicator (\S+)\s+with errorcode (\d+)")


class MPIJobError(FlyteError, RuntimeError):
    """An MPI job failed without a Python exception to re-raise: a rank killed by a signal or exiting with a code,
    ``mpirun`` itself failing, a launcher command failing, or the deadline."""


def describe_exit(stderr: str, code: int) -> str:
    """Which rank ended the job and how, from mpirun's own report; else mpirun's exit code or signal."""
    if match := _SIGNAL.search(stderr):
        number = int(match.group(4))
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else f"signal {number}"
        return f"rank {match.group(1)} (pid {match.group(2)}) was killed by {name}"
    if match := _EXIT_CODE.search(stderr):
        return f"rank {match.group(1)} exited with code {match.group(2)}"
    if match := _ABORT.search(stderr):
        return f"rank {match.group(1)} called MPI_Abort with error code {match.group(3)}"
    if match := _IMPROPER.search(stderr):
        return f"rank {match.group(1)} (pid {match.group(2)}) exited without MPI_Finalize"
    if code < 0:
        return f"mpirun was killed by {signal.Signals(-code).name}"
    return f"mpirun exited with code {code}"


def _tail(stderr: str, lines: int = 30) -> str:
    kept = [line for line in stderr.splitlines() if line.strip() and not set(line.strip()) <= {"-"}]
    return "\n".join(kept[-lines:])


def error_from_job(task_name: str, documents: dict[int, dict[str, Any]], stderr: str, code: int) -> BaseException:
    """The user's own exception from the first failed rank (rank and its traceback as notes) where one raised,
    else an ``MPIJobError`` that names the rank and its exit code or signal, with mpirun's last lines."""
    if documents:
        rank = min(documents)
        document = documents[rank]
        summary = f"{task_name}: rank {rank} of the MPI job (pid {document['pid']}) raised"
        if len(documents) > 1:
            summary += f"; ranks {', '.join(str(r) for r in sorted(documents) if r != rank)} raised too"
        return exception_from_document(document, summary, f"Rank {rank} traceback")
    message = f"{task_name}: the MPI job failed: {describe_exit(stderr, code)}"
    tail = _tail(stderr)
    if tail:
        message += f"\nmpirun's last lines:\n{tail}"
    return MPIJobError(message)
