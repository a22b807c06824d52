"""A two-process torch job that runs for minutes."""
import os
import time

import flyte
from flyteplugins.pytorch.task import Elastic

env = flyte.TaskEnvironment(name="torch_env", plugin_config=Elastic(nproc_per_node=2))


@env.task
def long_job(seconds: int) -> int:
    import torch.distributed as dist

    dist.init_process_group("gloo")
    if dist.get_rank() == 0:
        print("JOB RUNNING", flush=True)
    time.sleep(seconds)
    return dist.get_world_size()


if __name__ == "__main__":
    task = long_job
    if os.environ.get("JOB_TIMEOUT"):  # the timeout tests
        task = long_job.override(timeout=float(os.environ["JOB_TIMEOUT"]))
    print(flyte.run(task, seconds=300).outputs()[0])
