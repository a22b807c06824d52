"""A Dask task whose futures run for minutes (the seed's style: Client() in an async task)."""
import os
import time

from distributed import Client

import flyte
from flyteplugins.dask.task import Dask, WorkerGroup

env = flyte.TaskEnvironment(name="dask_env", plugin_config=Dask(workers=WorkerGroup(number_of_workers=2)))


def slow_inc(x: int) -> int:
    time.sleep(1)
    return x + 1


@env.task
async def long_job(n: int) -> int:
    client = Client()
    futures = client.map(slow_inc, range(n))
    print("JOB RUNNING", flush=True)
    return sum(client.gather(futures))


if __name__ == "__main__":
    task = long_job
    if os.environ.get("JOB_TIMEOUT"):  # the timeout tests
        task = long_job.override(timeout=float(os.environ["JOB_TIMEOUT"]))
    print(flyte.run(task, n=200).outputs()[0])
