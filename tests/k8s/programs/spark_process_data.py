"""flyte-sdk's Spark example from its docs (the plugins page's ``process_data``), as published but for the
``__main__`` part that runs it and prints its output as JSON."""
import json

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


@spark_env.task
async def process_data(partitions: int = 3) -> float:
    # Access the automatically initialized SparkSession
    spark = flyte.ctx().data["spark_session"]

    # Use Spark as usual
    df = spark.range(1, 1000).toDF("number")
    return df.count()


if __name__ == "__main__":
    flyte.init_from_config()
    print(json.dumps({"process_data": flyte.run(process_data).outputs()[0]}))
