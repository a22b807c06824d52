"""A Ray task whose remote calls run for minutes (the seed's style: ray.get in an async task)."""
import os
import time

import ray

import flyte
from flyteplugins.ray.task import RayJobConfig, WorkerNodeConfig

env = flyte.TaskEnvironment(name="ray_env", plugin_config=RayJobConfig(
    worker_node_config=[WorkerNodeConfig(group_name="workers", replicas=1)]))


@ray.remote
def slow_square(x: int) -> int:
    time.sleep(1)
    return x * x


@env.task
async def long_job(n: int) -> int:
    refs = [slow_square.remote(i) for i in range(n)]
    print("JOB RUNNING", flush=True)
    return sum(ray.get(refs))


if __name__ == "__main__":
    task = long_job
    if os.environ.get("JOB_TIMEOUT"):  # the timeout tests
        task = long_job.override(timeout=float(os.environ["JOB_TIMEOUT"]))
    print(flyte.run(task, n=200).outputs()[0])
