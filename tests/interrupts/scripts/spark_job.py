"""A Spark task whose job runs for minutes, as users write them: async def, blocking Spark calls."""
import os
import time

import flyte
from flyteplugins.spark.task import Spark

env = flyte.TaskEnvironment(name="spark_env", plugin_config=Spark(spark_conf={"spark.executor.instances": "1"}))


@env.task
async def long_job(n: int) -> int:
    spark = flyte.ctx().data["spark_session"]
    print("JOB RUNNING", flush=True)
    return spark.range(n).rdd.map(lambda x: (time.sleep(0.05), x)[1]).count()


if __name__ == "__main__":
    task = long_job
    if os.environ.get("JOB_TIMEOUT"):  # the timeout tests
        task = long_job.override(timeout=float(os.environ["JOB_TIMEOUT"]))
    print(flyte.run(task, n=4000).outputs()[0])
