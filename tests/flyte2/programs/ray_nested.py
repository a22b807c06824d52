"""flyte-sdk's Ray example as published, but for runtime_env's pip list (this machine has no package index):
remote functions at module level, a plain task alongside, ray.get in the task."""
import asyncio
import json
import typing

import ray

import flyte.remote
from flyteplugins.ray.task import HeadNodeConfig, RayJobConfig, WorkerNodeConfig


@ray.remote
def f(x):
    return x * x


ray_config = RayJobConfig(
    head_node_config=HeadNodeConfig(ray_start_params={"log-color": "True"}),
    worker_node_config=[WorkerNodeConfig(group_name="ray-group", replicas=2)],
    runtime_env={"env_vars": {"FROM_RUNTIME_ENV": "yes"}},
    enable_autoscaling=False,
    shutdown_after_job_finishes=True,
    ttl_seconds_after_finished=300,
)

image = (flyte.Image.from_debian_base(name="ray").with_apt_packages("wget")
         .with_pip_packages("ray[default]==2.46.0", "flyteplugins-ray", "pip", "mypy"))

task_env = flyte.TaskEnvironment(name="hello_ray", resources=flyte.Resources(cpu=(1, 2), memory=("400Mi", "1000Mi")),
                                 image=image)
ray_env = flyte.TaskEnvironment(name="ray_env", plugin_config=ray_config, image=image,
                                resources=flyte.Resources(cpu=(3, 4), memory=("3000Mi", "5000Mi")),
                                depends_on=[task_env])


@task_env.task()
async def hello_ray():
    await asyncio.sleep(1)
    print("Hello from the Ray task!")


@ray_env.task
async def hello_ray_nested(n: int = 3) -> typing.List[int]:  # noqa: UP006 - as published
    print("running ray task")
    t = asyncio.create_task(hello_ray())
    futures = [f.remote(i) for i in range(n)]
    res = ray.get(futures)
    await t
    return res


if __name__ == "__main__":
    flyte.init_from_config()
    run = flyte.run(hello_ray_nested)
    print("run name:", run.name)
    print("run url:", run.url)
    run.wait()
    print("RESULT " + json.dumps({"out": run.outputs()[0]}))
