"""What every rank runs: ``python -m flyteplugins.mpi._rank <job dir>`` under ``mpirun``.

Loads the function and its inputs, makes ``flyte.ctx()`` the calling task's context with the rank's ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``, calls the function (sync or async), and leaves rank 0's value in the job
directory. A rank that raises writes its exception and traceback there, then aborts the MPI job so that ranks
waiting for it in a collective stop at once instead of hanging.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import sys
import traceback
from typing import Any

import cloudpickle

from . import _job
from ._launch import abort_mpi, rank_environment


def _die_with_parent() -> None:
    """SIGKILL this rank when its ``prted``/``prterun`` parent dies (Linux), so no rank outlives its job."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _call(payload: dict[str, Any]) -> Any:
    from flyte.extend import worker_context

    with worker_context(payload["context"], payload["data"]):
        func, args, kwargs = payload["func"], payload["args"], payload["kwargs"]
        if inspect.iscoroutinefunction(func):
            return asyncio.run(func(*args, **kwargs))
        return func(*args, **kwargs)


def _write_error(job_dir: str, rank: int, exc: BaseException) -> None:
    try:
        pickled: bytes | None = cloudpickle.dumps(exc)
        cloudpickle.loads(pickled)
    except Exception:  # an exception that cannot be rebuilt is reported by type name, message and traceback
        pickled = None
    document = {
        "rank": rank,
        "pid": os.getpid(),
        "host": os.uname().nodename,
        "type_name": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
        "exception": pickled,
    }
    try:
        _job.write_pickle(_job.error_file(job_dir, rank), document)
    except OSError:
        pass


def _abort_job() -> None:
    """Stop every rank: ``MPI_Abort`` when this rank initialised MPI, else a non-zero exit, which makes ``mpirun``
    stop the rest."""
    abort_mpi()
    os._exit(1)


def main(job_dir: str) -> int:
    _die_with_parent()
    os.environ.update(rank_environment(dict(os.environ)))
    rank = int(os.environ["RANK"])
    try:
        with open(os.path.join(job_dir, _job.PAYLOAD), "rb") as handle:
            payload = cloudpickle.load(handle)
        value = _call(payload)
        if rank == 0:
            try:
                encoded = cloudpickle.dumps(value)
            except Exception as exc:
                task = payload["context"].get("task_name", "the task")
                raise TypeError(f"{task}: the output of rank 0 (a {type(value).__name__}) cannot be sent back to "
                                f"the caller: {exc}") from exc
            _job.write_atomically(os.path.join(job_dir, _job.RESULT), encoded)
    except BaseException as exc:
        _write_error(job_dir, rank, exc)
        sys.stderr.write(f"[rank {rank}] {''.join(traceback.format_exception(exc))}")
        sys.stderr.flush()
        _abort_job()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
