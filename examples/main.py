"""The main example: a Spark task resized per call by an override, on the embedded engine (Spark local[N]).

    python examples/main.py

With a config file that names a cluster and says ``remote: true`` (see the README's Kubernetes section), the same
script runs each call on the cluster instead: the driver in a pod, the Spark calls as SparkApplications.
"""

import flyte
from flyteplugins.spark.task import Spark

env = flyte.TaskEnvironment(name="spark_env", plugin_config=Spark(spark_conf={"spark.executor.instances": "2"}))


@env.task
async def count(n: int) -> int:
    spark = flyte.ctx().data["spark_session"]
    return spark.range(n).count()


@env.task
async def executors() -> str:
    return flyte.ctx().data["spark_session"].conf.get("spark.executor.instances")


@flyte.TaskEnvironment(name="driver", depends_on=[env]).task
async def driver(n: int) -> dict:
    bigger = Spark(spark_conf={"spark.executor.instances": "8"})
    small = {"count": await count(n), "executor_instances": await executors()}
    # A per-call cluster resize: the session restarts with the new static conf for these calls.
    big = {"count": await count.override(plugin_config=bigger)(n),
           "executor_instances": await executors.override(plugin_config=bigger)()}
    return {"small": small, "big": big}


if __name__ == "__main__":
    flyte.init_from_config()  # no config file: local
    run = flyte.run(driver, n=1000)
    print(run.outputs()[0])
    assert run.outputs()[0] == {"small": {"count": 1000, "executor_instances": "2"},
                             "big": {"count": 1000, "executor_instances": "8"}}
