"""Ray on this machine: the flyte-sdk docs' Ray example as written, then the same job resized by an override.

Run: ``python examples/ray_example.py``. The docs' ``runtime_env`` pip-installs numpy and pandas into a virtualenv
for Ray's workers (about a minute the first time); without access to PyPI the example leaves that entry out.
"""

import socket

import ray

import flyte
from flyteplugins.ray.task import HeadNodeConfig, RayJobConfig, WorkerNodeConfig


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=3).close()
        return True
    except OSError:
        return False


ray_config = RayJobConfig(
    head_node_config=HeadNodeConfig(ray_start_params={"log-color": "True"}),
    worker_node_config=[WorkerNodeConfig(group_name="ray-group", replicas=2)],
    runtime_env={"pip": ["numpy", "pandas"]} if _pypi_reachable() else None,
)

ray_env = flyte.TaskEnvironment(
    name="ray_env",
    plugin_config=ray_config,
    image="my-ray-image",
)


@ray_env.task
async def ray_task(n: int = 3) -> list[int]:
    @ray.remote
    def square(x):
        return x * x

    futures = [square.remote(i) for i in range(n)]
    return ray.get(futures)


small = RayJobConfig(worker_node_config=[WorkerNodeConfig(group_name="ray-group", replicas=1)])
cpus_env = flyte.TaskEnvironment(name="ray_cpus", plugin_config=small)


@cpus_env.task
async def cluster_cpus() -> int:
    """The CPUs the local Ray instance reports: one per worker replica here (the head takes none)."""
    return int(ray.cluster_resources()["CPU"])


driver = flyte.TaskEnvironment(name="ray_driver")


@driver.task
async def resize() -> tuple[int, int]:
    one = await cluster_cpus()
    two = await cluster_cpus.override(
        plugin_config=RayJobConfig(worker_node_config=[WorkerNodeConfig(group_name="ray-group", replicas=2)])
    )()
    return one, two


if __name__ == "__main__":
    result = flyte.run(ray_task)
    print("squares:", result.outputs()[0])
    assert result.outputs()[0] == [0, 1, 4]
    one, two = flyte.run(resize).outputs()
    print(f"CPUs with 1 worker replica: {one}, with 2: {two}")
