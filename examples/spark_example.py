"""Spark with flyte: the distributed-compute page's example, a DataFrame passed between tasks, and a driver that
resizes the session with ``override``. Runs on this machine (embedded SparkSession; needs Java 17+):

    python examples/spark_example.py
"""

from __future__ import annotations

import flyte
from flyteplugins.spark.task import Spark

spark_conf = Spark(
    spark_conf={
        "spark.driver.memory": "3000M",
        "spark.executor.memory": "1000M",
        "spark.executor.instances": "2",
    },
)

spark_env = flyte.TaskEnvironment(
    name="spark_env",
    plugin_config=spark_conf,
    image="ghcr.io/flyteorg/spark-py:v3.4.0",
)
driver_env = flyte.TaskEnvironment(name="driver_env")


@spark_env.task
async def process_data(partitions: int = 3) -> float:
    # Access the automatically initialized SparkSession
    spark = flyte.ctx().data["spark_session"]

    # Use Spark as usual
    df = spark.range(1, 1000).toDF("number")
    return df.count()


@spark_env.task
async def squares(n: int):
    """Returns a Spark DataFrame: it reaches the next task as Parquet under the run's raw data path."""
    spark = flyte.ctx().data["spark_session"]
    return spark.range(n).selectExpr("id", "id * id AS square")


@spark_env.task
async def total(frame) -> int:
    return int(frame.groupBy().sum("square").collect()[0][0])


@spark_env.task
async def executors_seen() -> str:
    spark = flyte.ctx().data["spark_session"]
    return f"{spark.conf.get('spark.executor.instances')} instance(s) on {spark.sparkContext.master}"


@driver_env.task
async def scaling_controller() -> list[str]:
    seen = []
    for num_executors in (1, 2):
        new_conf = Spark(spark_conf={"spark.executor.instances": str(num_executors), "spark.driver.memory": "3000M"})
        seen.append(await executors_seen.override(plugin_config=new_conf)())
    return seen


@driver_env.task
async def pipeline() -> int:
    return await total(await squares(10))


if __name__ == "__main__":
    print("count:", flyte.run(process_data).outputs()[0])
    print("sum of squares below 10:", flyte.run(pipeline).outputs()[0])
    print("resized:", flyte.run(scaling_controller).outputs()[0])
