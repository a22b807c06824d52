"""Tasks that shut their engine down themselves (Client().shutdown(), ray.shutdown()); the next task of the same
run must get a working, correctly sized engine, not a dead or unmanaged one."""
import ray
from distributed import Client

import flyte
from flyteplugins.dask.task import Dask, WorkerGroup
from flyteplugins.ray.task import RayJobConfig, WorkerNodeConfig

dask_env = flyte.TaskEnvironment(name="d", plugin_config=Dask(workers=WorkerGroup(number_of_workers=2)))
ray_env = flyte.TaskEnvironment(name="r", plugin_config=RayJobConfig(
    worker_node_config=[WorkerNodeConfig(group_name="w", replicas=1)]))
main = flyte.TaskEnvironment(name="main", depends_on=[dask_env, ray_env])


@dask_env.task
async def dask_workers(stop: bool) -> int:
    client = Client()
    workers = len(client.scheduler_info()["workers"])
    if stop:
        client.shutdown()
    return workers


@ray_env.task
async def ray_cpus(stop: bool) -> float:
    @ray.remote
    def one() -> int:
        return 1

    assert ray.get(one.remote()) == 1
    cpus = ray.cluster_resources()["CPU"]
    if stop:
        ray.shutdown()
    return cpus


@main.task
async def driver() -> list:
    return [await dask_workers(True), await dask_workers(False), await ray_cpus(True), await ray_cpus(False)]


if __name__ == "__main__":
    print("RESULT", flyte.run(driver).outputs()[0])
