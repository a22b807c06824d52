"""What each elastic worker process runs: load the function, set up the task context, call it, report.

Runs in processes started by the elastic agent. The return value crosses back to the agent by pickle, so it is
cloudpickled here first; only global rank 0 returns it (other nodes fetch it from the rendezvous store so that
every node's task call returns the same value).
"""

from __future__ import annotations

import os

import cloudpickle

from flyteplugins.kubeflow.local import call_in_worker, exception_document

from . import _job
from ._nccl import apply_collective_timeout

_RESULT_KEY = "flyte/pytorch/result"


def run_worker(job_dir: str) -> bytes | None:
    """The elastic entrypoint. Raises the user's exception (after writing its error document) on failure."""
    rank = int(os.environ.get("RANK", "0"))
    try:
        with open(os.path.join(job_dir, _job.PAYLOAD), "rb") as handle:
            payload = cloudpickle.load(handle)
        apply_collective_timeout(os.environ)
        value = call_in_worker(payload)
        try:
            encoded = cloudpickle.dumps(value)
        except Exception as exc:  # named like the core's encoding errors, not a bare pickling TypeError
            task = payload["context"].get("task_name", "the task")
            raise TypeError(f"{task}: output (a {type(value).__name__}) of rank {rank} cannot be sent back to the "
                            f"caller: {exc}") from exc
        return _share_result(encoded, payload["nnodes"], rank)
    except BaseException as exc:
        _write_error(job_dir, rank, exc)
        raise


def _share_result(encoded: bytes, nnodes: int, rank: int) -> bytes | None:
    """Rank 0 returns its result; with several nodes it also publishes it so every node's task gets it."""
    if nnodes <= 1:
        return encoded if rank == 0 else None
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if rank != 0 and local_rank != 0:
        return None
    from datetime import timedelta

    import torch.distributed as dist

    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                          timeout=timedelta(seconds=300))
    key = f"{_RESULT_KEY}/{os.environ.get('TORCHELASTIC_RUN_ID', '')}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    if rank == 0:
        store.set(key, encoded)  # type: ignore[arg-type]  # bytes are stored as they are
        return encoded
    return bytes(store.get(key))  # blocks until rank 0 has published


def _write_error(job_dir: str, rank: int, exc: BaseException) -> None:
    document = exception_document(exc, rank=rank, local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                                  node_rank=int(os.environ.get("GROUP_RANK", "0")))
    try:
        _job.write_pickle(_job.error_file(job_dir, rank, os.getpid()), document)
    except OSError:
        pass
