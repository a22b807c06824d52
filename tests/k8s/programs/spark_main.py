"""The README's main example as users write it (init_from_config, flyte.run): with a config that says remote, its
calls run on the cluster, each Spark call as a SparkApplication whose driver runs the task (the override's resize
included: its sparkConf asks for 8 executors)."""
import json

import flyte
from flyteplugins.spark.task import Spark

env = flyte.TaskEnvironment(name="spark_env", plugin_config=Spark(spark_conf={"spark.executor.instances": "2"}))


@env.task
async def count(n: int) -> int:
    return flyte.ctx().data["spark_session"].range(n).count()


@env.task
async def executors() -> str:
    return flyte.ctx().data["spark_session"].conf.get("spark.executor.instances")


@flyte.TaskEnvironment(name="driver", depends_on=[env]).task
async def driver(n: int) -> dict:
    bigger = Spark(spark_conf={"spark.executor.instances": "8"})
    return {"count": await count(n), "resized": await count.override(plugin_config=bigger)(n),
            "executors": await executors.override(plugin_config=bigger)()}


if __name__ == "__main__":
    flyte.init_from_config()
    print(json.dumps(flyte.run(driver, n=1000).outputs()[0], sort_keys=True))
