"""Seed 000's Ray example in flyte 2 form (ray.init() inside the task), run as a plain script with no guard."""
import flyte
from flyteplugins.ray.task import HeadNodeConfig, RayJobConfig, WorkerNodeConfig

env = flyte.TaskEnvironment(name="ray_env", plugin_config=RayJobConfig(
    head_node_config=HeadNodeConfig(requests={"cpu": "1", "memory": "2Gi"}),
    worker_node_config=[WorkerNodeConfig(group_name="default-workers", replicas=1, requests={"cpu": "1",
                                                                                           "memory": "1Gi"})],
))


@env.task
async def ray_processing_task(data_path: str) -> int:
    import ray
    ray.init()  # Connects to the provisioned Ray cluster

    @ray.remote
    def process_data(chunk):
        return len(chunk)

    futures = [process_data.remote([1, 2, 3]), process_data.remote([4, 5])]
    results = ray.get(futures)
    return sum(results)


print("RESULT", flyte.run(ray_processing_task, data_path="unused").outputs()[0])
