"""Seed 000's Dask example in flyte 2 form, run as a plain script with no __main__ guard."""
import flyte
from flyteplugins.dask.task import Dask, Scheduler, WorkerGroup

env = flyte.TaskEnvironment(name="dask_env", plugin_config=Dask(
    scheduler=Scheduler(requests={"cpu": "0.5", "memory": "1Gi"}),
    workers=WorkerGroup(number_of_workers=3, requests={"cpu": "1", "memory": "1Gi"}),
))


@env.task
async def dask_processing_task(n: int) -> int:
    import dask.array as da
    from distributed import Client

    client = Client()  # Dask client will automatically connect to the provisioned scheduler
    print("WORKERS", len(client.scheduler_info()["workers"]))
    return int(da.ones(n, chunks=10).sum().compute())


print("RESULT", flyte.run(dask_processing_task, n=100).outputs()[0])
