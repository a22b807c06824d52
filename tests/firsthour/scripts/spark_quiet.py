"""A Spark task run as a script: the JVM's start-up chatter stays out of the user's terminal, while what the job
prints later (a Python worker's stderr, which passes through the JVM) still reaches it."""
import sys

import flyte
from flyteplugins.spark.task import Spark

env = flyte.TaskEnvironment(name="spark_env", plugin_config=Spark(spark_conf={"spark.executor.instances": "2"}))


def speak(_):
    print("WORKER-SAYS-HI", file=sys.stderr, flush=True)


@env.task
async def count(n: int) -> int:
    spark = flyte.ctx().data["spark_session"]
    spark.sparkContext.parallelize([1], 1).foreach(speak)
    return spark.range(n).count()


print("RESULT", flyte.run(count, n=1000).outputs()[0])
