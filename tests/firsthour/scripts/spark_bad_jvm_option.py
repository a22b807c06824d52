"""A Spark session that cannot start (a JVM option it rejects): the JVM's own words are shown."""
import flyte
from flyteplugins.spark.task import Spark

env = flyte.TaskEnvironment(name="spark_env", plugin_config=Spark(spark_conf={"spark.driver.extraJavaOptions": "-Xss1"}))


@env.task
async def count(n: int) -> int:
    return flyte.ctx().data["spark_session"].range(n).count()


print("RESULT", flyte.run(count, n=1000).outputs()[0])
