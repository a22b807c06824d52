"""A root Spark task that returns its DataFrame: the caller gets the data, usable after the run has ended."""
import flyte
from flyteplugins.spark.task import Spark

env = flyte.TaskEnvironment(name="spark_env", plugin_config=Spark(spark_conf={"spark.executor.instances": "1"}))


@env.task
async def frame(n: int):
    spark = flyte.ctx().data["spark_session"]
    return spark.range(n).withColumnRenamed("id", "x")


df = flyte.run(frame, n=5).outputs()[0]
print("RESULT", type(df).__name__, len(df), list(df["x"]))
