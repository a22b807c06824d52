"""PyTorch distributed training tasks: ``Elastic`` (torchrun) and ``PyTorch`` (Kubeflow fixed-size jobs).

```python
import flyte
from flyteplugins.pytorch.task import Elastic

env = flyte.TaskEnvironment(name="train", plugin_config=Elastic(nproc_per_node=2))

@env.task
async def train(steps: int) -> float:
    import torch, torch.distributed as dist
    dist.init_process_group("gloo")          # RANK, WORLD_SIZE, MASTER_ADDR/PORT are set
    ...
    return loss                               # the task returns global rank 0's value
```

On this machine every call really runs under ``torch.distributed.launcher.api.elastic_launch``: a launcher process
(the elastic agent, in its own process group) starts ``nproc_per_node`` workers that run the function, which may be
sync or async and defined anywhere, ``__main__`` and notebooks included (it travels by cloudpickle). The caller's
event loop stays free meanwhile; cancellation, timeouts and Ctrl-C stop the agent and every worker. A zombie
watchdog fails the task when all workers died but the agent hangs. Importing this module loads no torch.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Any, ClassVar

import anyio
import cloudpickle
import msgspec

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
from ._config import CleanPodPolicy, Elastic, Master, NcclSettings, PyTorch, RestartPolicy, RunPolicy, Worker
from ._errors import TorchJobError, ZombieWorkersError, error_from_failures
from ._plan import launch_plan, launcher_environment
from ._supervisor import LauncherProcess

__all__ = [
    "CleanPodPolicy",
    "Elastic",
    "Master",
    "NcclSettings",
    "PyTorch",
    "RestartPolicy",
    "RunPolicy",
    "TorchFunctionTask",
    "TorchJobError",
    "Worker",
    "ZombieWorkersError",
]

_JOB_KEY = "pytorch_job"


class _Job:
    """One call's job: its directory and launcher, released in ``release``."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.launcher: LauncherProcess | None = None

    async def close(self) -> None:
        if self.launcher is not None:
            await self.launcher.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class TorchFunctionTask(AsyncFunctionTaskTemplate):
    """Runs the function under torch.distributed.elastic with the ``Elastic`` or ``PyTorch`` plugin config."""

    task_type: ClassVar[str] = "pytorch"
    supports_reuse: ClassVar[bool] = False

    @property
    def elastic(self) -> Elastic:
        """The config as an elastic job (``PyTorch`` runs as one node of ``1 + worker.replicas`` processes)."""
        config = self.plugin_config
        return config.as_elastic() if isinstance(config, PyTorch) else config

    async def pre(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        directory = tempfile.mkdtemp(prefix="job-", dir=run_temp_dir("pytorch"))
        return {_JOB_KEY: _Job(directory)}

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        if isinstance(self.plugin_config, PyTorch) and _operator_replica():
            # One replica of a PyTorchJob (a remote run): the operator set RANK, WORLD_SIZE and MASTER_ADDR/PORT
            # for this pod, which is one process of the job; the function runs here, and the master's value is the
            # task's.
            if os.environ["RANK"] != "0":
                omit_outputs()
            return await AsyncFunctionTaskTemplate.execute(self, *args, **kwargs)
        context = current_context.get()
        assert context is not None
        job: _Job = context.data[_JOB_KEY]
        config = self.elastic
        plan = launch_plan(config, self.name, os.environ)
        _job.write_atomically(os.path.join(job.directory, _job.PLAN), msgspec.json.encode(plan))
        payload = {
            "func": self.func,
            "args": args,
            "kwargs": kwargs,
            "nnodes": plan.max_nodes,
            "data": {k: v for k, v in context.data.items() if k != _JOB_KEY},
            "context": context_for_worker(context),
        }
        _job.write_atomically(os.path.join(job.directory, _job.PAYLOAD), cloudpickle.dumps(payload))

        policy = config.run_policy
        deadline_seconds = policy.active_deadline_seconds if policy is not None else None
        deadline = time.monotonic() + deadline_seconds if deadline_seconds else None
        job.launcher = LauncherProcess.start(job.directory, launcher_environment(config, job.directory, os.environ))
        try:
            code = await job.launcher.wait(task_name=self.name, watchdog_interval=config.zombie_watchdog_interval_sec,
                                           monitor_interval=float(config.monitor_interval), deadline=deadline)
        except TimeoutError:
            raise TorchJobError(f"{self.name}: the job ran longer than RunPolicy.active_deadline_seconds="
                                f"{deadline_seconds}; it was stopped") from None
        finally:
            # Stop before leaving, whatever happened: cancellation and timeouts land here too.
            with anyio.CancelScope(shield=True):
                await job.launcher.stop()
        return self._result(job.directory, code)

    def _result(self, directory: str, code: int) -> Any:
        path = os.path.join(directory, _job.OUTCOME)
        if not os.path.exists(path):
            raise TorchJobError(f"{self.name}: the elastic launcher exited with code {code} without reporting")
        outcome = _job.read_pickle(path)
        status = outcome["status"]
        if status == "succeeded":
            return cloudpickle.loads(outcome["value"]) if outcome["value"] is not None else None
        if status == "failed":
            raise error_from_failures(self.name, outcome["failures"])
        if status == "signalled":
            raise TorchJobError(f"{self.name}: the elastic agent was stopped by {outcome['signal']}")
        raise TorchJobError(f"{self.name}: the elastic agent failed: {outcome['type_name']}: {outcome['message']}\n"
                            f"{outcome['traceback']}")

    async def release(self, data: dict[str, Any], error: BaseException | None) -> None:
        job = data.get(_JOB_KEY)
        if isinstance(job, _Job):
            await job.close()


def _operator_replica() -> bool:
    """Whether this process is a replica pod of a PyTorchJob started by the remote tier."""
    return in_remote_pod() and all(os.environ.get(name) for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR",
                                                                     "MASTER_PORT"))


TaskPluginRegistry.register(Elastic, TorchFunctionTask)
TaskPluginRegistry.register(PyTorch, TorchFunctionTask)
