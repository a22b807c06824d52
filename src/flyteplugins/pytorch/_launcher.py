"""The launcher process: one elastic agent (``torch.distributed.launcher.api.elastic_launch``) per task call.

Started by the task process as ``python -m flyteplugins.pytorch._launcher <job dir>`` in a session of its own, so
the agent owns its workers and its signal handlers (SIGTERM/SIGINT stop the agent and every worker), and the task
process can stop the whole job by process group. Writes ``outcome.pkl`` in every case it survives.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import traceback
from typing import Any

from flyteplugins.kubeflow.local import die_with_parent


def _failures(error: Any, job_dir: str) -> list[dict[str, Any]]:
    from . import _job

    failures = []
    for rank, failure in sorted(error.failures.items()):
        exitcode = failure.exitcode
        document = None
        path = _job.error_file(job_dir, rank, failure.pid)
        if os.path.exists(path):
            try:
                document = _job.read_pickle(path)
            except Exception:
                document = None
        failures.append({
            "rank": rank,
            "local_rank": failure.local_rank,
            "pid": failure.pid,
            "exitcode": exitcode,
            "signal": failure.signal_name() if exitcode is not None and exitcode < 0 else None,
            "timestamp": failure.timestamp,
            "message": failure.message if isinstance(failure.message, str) else repr(failure.message),
            "document": document,
        })
    return failures


def main(job_dir: str) -> int:
    die_with_parent(signal.SIGTERM)  # the agent then stops its workers: no job outlives the task process
    import msgspec

    from . import _job
    from ._worker import run_worker

    # torch.multiprocessing makes one error file per worker in the temp dir and keeps it when the worker fails:
    # inside the job dir they go with it.
    tempfile.tempdir = os.path.join(job_dir, "tmp")
    os.makedirs(tempfile.tempdir, exist_ok=True)
    outcome_path = os.path.join(job_dir, _job.OUTCOME)
    try:
        with open(os.path.join(job_dir, _job.PLAN), "rb") as handle:
            plan = msgspec.json.decode(handle.read(), type=_job.LaunchPlan)
        from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, SignalException
        from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
        from torch.distributed.launcher.api import LaunchConfig, elastic_launch

        config = LaunchConfig(
            min_nodes=plan.min_nodes,
            max_nodes=plan.max_nodes,
            nproc_per_node=plan.nproc_per_node,
            run_id=plan.run_id,
            role="flyte",
            rdzv_backend=plan.rdzv_backend,
            rdzv_endpoint=plan.rdzv_endpoint,
            rdzv_configs=dict(plan.rdzv_configs),
            max_restarts=plan.max_restarts,
            monitor_interval=plan.monitor_interval,
            start_method=plan.start_method,
            shutdown_timeout=plan.shutdown_timeout,
            # Inside the job directory, which the task removes: by default every launch leaves a /tmp/torchelastic_*.
            logs_specs=DefaultLogsSpecs(log_dir=os.path.join(job_dir, "elastic-logs")),
        )
        try:
            values = elastic_launch(config, run_worker)(job_dir)
        except ChildFailedError as error:
            _job.write_pickle(outcome_path, {"status": "failed", "failures": _failures(error, job_dir)})
            return 1
        except SignalException as error:
            _job.write_pickle(outcome_path, {"status": "signalled", "signal": signal.Signals(error.sigval).name})
            return 128 + int(error.sigval)
        result = values.get(0)
        if result is None:  # rank 0 runs on another node: take the copy a local worker fetched
            result = next((v for _, v in sorted(values.items()) if v is not None), None)
        _job.write_pickle(outcome_path, {"status": "succeeded", "value": result})
        return 0
    except BaseException as exc:  # the agent itself failed (rendezvous timeout, bad config)
        _job.write_pickle(outcome_path, {"status": "launcher_failed", "type_name": type(exc).__qualname__,
                                         "message": str(exc), "traceback": traceback.format_exc()})
        return 2


if __name__ == "__main__":
    exit_code = main(sys.argv[1])
    # The outcome is on disk and every worker is gone: skip the interpreter's teardown of torch (about half a
    # second) that would only delay the task's result.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)
