"""A Spark task run as a script: the JVM's start-up chatter stays out of the user's terminal."""
import flyte
from flyteplugins.spark.task import Spark

env = flyte.TaskEnvironment(name="spark_env", plugin_config=Spark(spark_conf={"spark.executor.instances": "2"}))


@env.task
async def count(n: int) -> int:
    return flyte.ctx().data["spark_session"].range(n).count()


print("RESULT", flyte.run(count, n=1000).outputs())
