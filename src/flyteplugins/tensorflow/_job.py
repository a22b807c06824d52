"""One call's embedded job: the replicas' processes, their files, and the call's value from the primary's outputs.

The job directory holds ``task.pkl`` (the task, cloudpickled, as the replicas load it), ``inputs.msgpack`` (the
call's inputs) and one folder per replica (``<type>-<index>/``) with its ``outputs/`` (``outputs.msgpack`` or
``error.json``, written by the runtime) and its ``tmp/`` (its ``TMPDIR``); it goes with the job.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Mapping
from typing import Any

import anyio
import cloudpickle

from flyte.extend import TaskContext

from ._cluster import (
    REPLICA_ENV,
    Replica,
    cluster_spec,
    distributed,
    free_ports,
    primary_of,
    replicas_of,
    serves,
    tf_config,
)
from ._config import TfJob
from ._errors import TfJobError, job_error
from ._supervisor import JOB_ENV, ReplicaProcess, stop_all, supervise

PEER_GRACE_S = 10.0  # after the primary's success, how long the other trainers may take to finish their own work


class Job:
    """A call's replicas, started by :meth:`run` and stopped by :meth:`close` however the call ends."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.processes: dict[Replica, ReplicaProcess] = {}

    async def run(self, task: Any, context: TaskContext, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        from flyte.runtime import arguments, read_outputs

        config: TfJob = task.plugin_config
        task_path, inputs_path = await anyio.to_thread.run_sync(self._write_call, task, args, kwargs)

        replicas = replicas_of(config)
        primary = primary_of(config)
        environ = replica_environment(self.directory, os.environ)
        ports = free_ports(len(replicas))  # just before the replicas start (see free_ports for the race)
        cluster = cluster_spec({r: f"127.0.0.1:{port}" for r, port in zip(replicas, ports, strict=True)})
        for replica in replicas:
            folder = os.path.join(self.directory, f"{replica.type}-{replica.index}")
            os.makedirs(os.path.join(folder, "tmp"))
            env = {**environ, REPLICA_ENV: replica.type, "TMPDIR": os.path.join(folder, "tmp")}
            if distributed(config):
                env["TF_CONFIG"] = tf_config(cluster, replica)
            self.processes[replica] = ReplicaProcess.start(
                replica, arguments(task=task_path, inputs=inputs_path, outputs=os.path.join(folder, "outputs"),
                                   raw_data_path=str(context.raw_data_path), run_name=context.run_name,
                                   action=context.action_name), env,
                error_document=os.path.join(folder, "outputs", "error.json"))

        policy = config.run_policy
        limit = policy.active_deadline_seconds if policy is not None else None
        try:
            outcome = await supervise(self.processes, primary, {r for r in replicas if serves(config, r)},
                                      deadline=time.monotonic() + limit if limit else None, peer_grace=PEER_GRACE_S)
        except TimeoutError:
            raise TfJobError(f"{task.name}: the job ran longer than RunPolicy.active_deadline_seconds={limit}; its "
                             "replicas were stopped") from None
        finally:
            # Stop before leaving, whatever happened: cancellation and timeouts land here too.
            with anyio.CancelScope(shield=True):
                await self.stop()
        if not outcome.succeeded:
            raise job_error(task.name, outcome.failures)
        outputs = os.path.join(self.directory, f"{primary.type}-{primary.index}", "outputs")
        try:
            return read_outputs(task, outputs, str(context.raw_data_path))
        except FileNotFoundError:
            raise TfJobError(f"{task.name}: {primary} exited with code 0 but left no outputs") from None

    def _write_call(self, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, str]:
        """The task and the call's inputs, as the replicas' runtime reads them."""
        from flyte.runtime import write_inputs

        # The replicas run the call, not the task: no cache, retries or timeout of their own (the caller has them).
        replica_task = task.override(retries=0, cache="disable", timeout=None, report=False)
        task_path = os.path.join(self.directory, "task.pkl")
        with open(task_path, "wb") as handle:
            cloudpickle.dump(replica_task, handle)
        inputs_path = os.path.join(self.directory, "inputs.msgpack")
        write_inputs(replica_task, inputs_path, *args, **kwargs)
        return task_path, inputs_path

    async def stop(self) -> None:
        await stop_all(list(self.processes.values()))

    async def close(self) -> None:
        await self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


# Variables of the process a job is started from that must not reach its replicas: that process may itself be a
# replica (a nested call) or a TFJob pod, whose cluster is not this job's.
_REPLICA_VARIABLES = ("TF_CONFIG", REPLICA_ENV, JOB_ENV, "TMPDIR")


def replica_environment(job_dir: str, environ: Mapping[str, str]) -> dict[str, str]:
    """What every replica starts with: the caller's environment (the task's env_vars are in it), unbuffered output,
    the job marker, and the caller's ``sys.path``, so that whatever the caller imports, the replicas can too."""
    env = {k: v for k, v in environ.items() if k not in _REPLICA_VARIABLES}
    env["PYTHONUNBUFFERED"] = "1"
    env[JOB_ENV] = job_dir
    paths = [p or os.getcwd() for p in sys.path]
    if environ.get("PYTHONPATH"):
        paths.append(environ["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env
