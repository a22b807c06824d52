"""The files through which the task process and the ranks of one call talk.

A job directory holds ``payload.pkl`` (the function, its inputs and the task context, cloudpickled, read by every
rank), ``hostfile`` (the local slots), ``result.pkl`` (rank 0's value, cloudpickled), ``error-<rank>.pkl`` (a rank's
exception, message and traceback) and ``tmp/`` (``TMPDIR`` of ``mpirun`` and the ranks: Open MPI's session
directory goes with the job).
"""

from __future__ import annotations

import os
from typing import Any

from flyteplugins.kubeflow.local import read_pickle, write_atomically, write_pickle

__all__ = ["error_documents", "error_file", "read_pickle", "write_atomically", "write_pickle"]

PAYLOAD = "payload.pkl"
RESULT = "result.pkl"
HOSTFILE = "hostfile"
TMP = "tmp"


def error_file(job_dir: str, rank: int) -> str:
    return os.path.join(job_dir, f"error-{rank}.pkl")


def error_documents(job_dir: str) -> dict[int, dict[str, Any]]:
    """Each failed rank's report, by rank."""
    documents = {}
    for entry in os.listdir(job_dir):
        if entry.startswith("error-") and entry.endswith(".pkl"):
            try:
                document = read_pickle(os.path.join(job_dir, entry))
            except Exception:
                continue
            documents[int(document["rank"])] = document
    return documents


