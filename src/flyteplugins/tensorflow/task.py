"""Distributed TensorFlow tasks: ``TfJob`` (the Kubeflow training operator's TFJob).

```python
import flyte
from flyteplugins.tensorflow.task import TfJob, Worker

env = flyte.TaskEnvironment(name="train", plugin_config=TfJob(worker=Worker(replicas=2)))

@env.task
def train(steps: int) -> list:
    import tensorflow as tf
    strategy = tf.distribute.MultiWorkerMirroredStrategy()   # reads TF_CONFIG
    ...
    return weights                                            # the task returns worker 0's value (the chief's)
```

Every replica runs the function, as the TFJob operator runs the same program in every pod, with the ``TF_CONFIG``
the operator would give it. On this machine each replica is a process of its own (``python -m flyte.runtime``, our
runtime, with the cluster on free loopback ports); the caller's event loop stays free meanwhile, and a failure, a
timeout, cancellation or Ctrl-C stops every replica. On Kubernetes the call is a ``TFJob``. In a replica,
``flyte.ctx().data`` holds ``tf_replica_type`` (``chief``, ``ps``, ``worker``, ``evaluator``), ``tf_replica_index``,
``tf_config`` (the parsed ``TF_CONFIG``, None for a job of one replica) and ``tf_primary`` (whether this replica's
value is the task's). Importing this module loads no TensorFlow.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, ClassVar

from flyte.extend import (
    AsyncFunctionTaskTemplate,
    TaskPluginRegistry,
    current_context,
    omit_outputs,
    run_temp_dir,
)

from ._cluster import REPLICA_ENV, identity_from
from ._config import PS, Chief, CleanPodPolicy, Evaluator, RestartPolicy, RunPolicy, TfJob, Worker
from ._errors import TfJobError
from ._job import Job

__all__ = [
    "PS",
    "Chief",
    "CleanPodPolicy",
    "Evaluator",
    "RestartPolicy",
    "RunPolicy",
    "TensorflowFunctionTask",
    "TfJob",
    "TfJobError",
    "Worker",
]

_JOB_KEY = "tensorflow_job"
# What a replica finds in flyte.ctx().data.
REPLICA_TYPE_KEY = "tf_replica_type"
REPLICA_INDEX_KEY = "tf_replica_index"
TF_CONFIG_KEY = "tf_config"
PRIMARY_KEY = "tf_primary"


class TensorflowFunctionTask(AsyncFunctionTaskTemplate):
    """Runs the function in every replica of a ``TfJob``: locally as processes, on Kubernetes as a TFJob."""

    task_type: ClassVar[str] = "tensorflow"
    supports_reuse: ClassVar[bool] = False

    async def pre(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        context = current_context.get()
        identity = identity_from(os.environ) if context is not None and context.parent is None else None
        if identity is not None:
            # This process is one replica (the runtime's root call): the function runs here. The marker goes, so
            # that a TensorFlow task this one calls starts a job of its own.
            os.environ.pop(REPLICA_ENV, None)
            return {REPLICA_TYPE_KEY: identity.type, REPLICA_INDEX_KEY: identity.index,
                    TF_CONFIG_KEY: identity.tf_config, PRIMARY_KEY: identity.primary}
        return {_JOB_KEY: Job(tempfile.mkdtemp(prefix="job-", dir=run_temp_dir("tensorflow")))}

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        context = current_context.get()
        assert context is not None
        if REPLICA_TYPE_KEY in context.data:
            if not context.data[PRIMARY_KEY]:
                omit_outputs()  # the primary's value is the task's; a TFJob's replicas share one outputs location
            return await AsyncFunctionTaskTemplate.execute(self, *args, **kwargs)
        job: Job = context.data[_JOB_KEY]
        return await job.run(self, context, args, kwargs)

    async def release(self, data: dict[str, Any], error: BaseException | None) -> None:
        job = data.get(_JOB_KEY)
        if isinstance(job, Job):
            await job.close()


TaskPluginRegistry.register(TfJob, TensorflowFunctionTask)
