"""What every rank runs: ``python -m flyteplugins.mpi._rank <job dir>`` under ``mpirun``.

Loads the function and its inputs, makes ``flyte.ctx()`` the calling task's context with the rank's ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``, calls the function (sync or async), and leaves rank 0's value in the job
directory. A rank that raises writes its exception and traceback there, then aborts the MPI job so that ranks
waiting for it in a collective stop at once instead of hanging.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback

import cloudpickle

from flyteplugins.kubeflow.local import call_in_worker, die_with_parent, exception_document

from . import _job
from ._launch import abort_mpi, rank_environment


def _write_error(job_dir: str, rank: int, exc: BaseException) -> None:
    try:
        _job.write_pickle(_job.error_file(job_dir, rank), exception_document(exc, rank=rank,
                                                                             host=os.uname().nodename))
    except OSError:
        pass


def _abort_job() -> None:
    """Stop every rank: ``MPI_Abort`` when this rank initialised MPI, else a non-zero exit, which makes ``mpirun``
    stop the rest."""
    abort_mpi()
    os._exit(1)


def main(job_dir: str) -> int:
    die_with_parent(signal.SIGKILL)  # its prted/prterun parent gone, no rank outlives the job
    os.environ.update(rank_environment(dict(os.environ)))
    rank = int(os.environ["RANK"])
    try:
        with open(os.path.join(job_dir, _job.PAYLOAD), "rb") as handle:
            payload = cloudpickle.load(handle)
        value = call_in_worker(payload)
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
