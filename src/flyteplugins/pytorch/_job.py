"""The files through which the task process, the launcher (elastic agent) and the workers talk.

A job directory holds ``plan.json`` (how to launch, read by the launcher), ``payload.pkl`` (the function and its
inputs, cloudpickled, read by the workers only, so the agent never imports user code), ``error-<rank>-<pid>.pkl``
(a failed worker's exception and traceback) and ``outcome.pkl`` (written by the launcher: rank 0's result or the
failures).
"""

from __future__ import annotations

import os
from typing import Any

import msgspec

from flyteplugins.kubeflow.local import read_pickle, write_atomically, write_pickle

__all__ = ["LaunchPlan", "error_file", "read_pickle", "write_atomically", "write_pickle"]

PLAN = "plan.json"
PAYLOAD = "payload.pkl"
OUTCOME = "outcome.pkl"


class LaunchPlan(msgspec.Struct, frozen=True, kw_only=True):
    min_nodes: int
    max_nodes: int
    nproc_per_node: int
    rdzv_backend: str
    rdzv_endpoint: str
    rdzv_configs: dict[str, Any]
    run_id: str
    start_method: str
    monitor_interval: float
    max_restarts: int
    shutdown_timeout: int = 5


def error_file(job_dir: str, rank: int, pid: int) -> str:
    return os.path.join(job_dir, f"error-{rank}-{pid}.pkl")


