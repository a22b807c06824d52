"""flyte-sdk's Spark example, as published but for the image registry and a smaller count: an Image built at module
level, a cluster-style spark_conf (remote jars included), a Spark task calling a plain task, and a resize by
overriding a deep copy of the config."""
import json
import random
from copy import deepcopy
from operator import add

import flyte.remote
from flyteplugins.spark.task import Spark

image = (
    flyte.Image.from_base("apache/spark-py:v3.4.0")
    .clone(name="spark", python_version=(3, 10), registry="ghcr.io/example", extendable=True,
           platform=("linux/amd64", "linux/arm64"))
    .with_pip_packages("flyteplugins-spark>=2.5.18")
)

task_env = flyte.TaskEnvironment(name="get_pi", resources=flyte.Resources(cpu=(1, 2), memory=("400Mi", "1000Mi")),
                                 image=image)

spark_conf = Spark(
    spark_conf={
        "spark.driver.memory": "1000M",
        "spark.executor.memory": "1000M",
        "spark.executor.cores": "1",
        "spark.executor.instances": "2",
        "spark.driver.cores": "1",
        "spark.kubernetes.file.upload.path": "/opt/spark/work-dir",
        "spark.jars": "https://storage.googleapis.invalid/hadoop-lib/gcs/gcs-connector-hadoop3-latest.jar",
    },
)

spark_env = flyte.TaskEnvironment(name="spark_env", resources=flyte.Resources(cpu=(3, 5), memory=("3000Mi", "5000Mi")),
                                  plugin_config=spark_conf, image=image, depends_on=[task_env])


def f(_):
    x = random.random() * 2 - 1
    y = random.random() * 2 - 1
    return 1 if x**2 + y**2 <= 1 else 0


@task_env.task
async def get_pi(count: int, partitions: int) -> float:
    return 4.0 * count / partitions


@spark_env.task
async def hello_spark_nested(partitions: int = 3) -> float:
    n = 1000 * partitions
    spark = flyte.ctx().data["spark_session"]
    count = spark.sparkContext.parallelize(range(1, n + 1), partitions).map(f).reduce(add)
    print("PARALLELISM", spark.sparkContext.defaultParallelism)
    return await get_pi(count, n)


@task_env.task
async def spark_overrider(executor_instances: int = 3, partitions: int = 4) -> float:
    updated_spark_conf = deepcopy(spark_conf)
    assert updated_spark_conf.spark_conf is not None
    updated_spark_conf.spark_conf["spark.executor.instances"] = str(executor_instances)
    first = await hello_spark_nested(partitions=partitions)
    return (first + await hello_spark_nested.override(plugin_config=updated_spark_conf)(partitions=partitions)) / 2


if __name__ == "__main__":
    flyte.init_from_config()
    r = flyte.run(spark_overrider, 1, 4)
    print(r.name)
    print(r.url)
    r.wait()
    print("RESULT " + json.dumps({"pi": r.outputs()[0], "uri": image.uri}))
