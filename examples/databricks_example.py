"""Spark on Databricks with flyte: one Jobs API run per call. Needs a workspace, an access token and storage the
cluster can read (the cluster gets this SDK through ``libraries``):

    export FLYTE_DATABRICKS_INSTANCE=my-workspace.cloud.databricks.com
    export DATABRICKS_TOKEN=...                       # or DatabricksV2(databricks_token=flyte.Secret(...))
    export FLYTE_DATABRICKS_STORAGE=s3://my-bucket/flyte   # or /Volumes/<catalog>/<schema>/<volume>/flyte
    python examples/databricks_example.py

``count_words`` runs on the cluster with its SparkSession; ``nightly_job`` submits a program of its own (its file
already on DBFS) and then reports on the run here.
"""

from __future__ import annotations

import flyte
from flyteplugins.spark.task import DatabricksV2

CLUSTER = {"spark_version": "15.4.x-scala2.12", "node_type_id": "m5.xlarge", "num_workers": 2}
LIBRARIES = [{"pypi": {"package": "flyte-distributed[databricks]"}}]

spark_env = flyte.TaskEnvironment(name="databricks_env", plugin_config=DatabricksV2(
    databricks_conf={"run_name": "flyte word count", "new_cluster": CLUSTER, "libraries": LIBRARIES,
                     "timeout_seconds": 3600},
))

own_program_env = flyte.TaskEnvironment(name="databricks_program", plugin_config=DatabricksV2(
    databricks_conf={
        "new_cluster": CLUSTER,
        "spark_python_task": {"python_file": "dbfs:/jobs/nightly.py", "parameters": ["--date", "today"]},
    },
))
driver_env = flyte.TaskEnvironment(name="databricks_driver")


@spark_env.task
def count_words(lines: list[str]) -> dict[str, int]:
    spark = flyte.ctx().data["spark_session"]  # the cluster's session
    words = spark.sparkContext.parallelize(lines).flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(int.__add__)
    return dict(words.collect())


@own_program_env.task
def nightly_job() -> str:
    run = flyte.ctx().data["databricks_run"]  # runs/get of the finished run
    return f"run {run['run_id']} took {run['run_duration'] / 1000:.0f}s: {run['run_page_url']}"


@driver_env.task
async def main() -> dict[str, int]:
    print(await nightly_job())
    return await count_words(["to be or not to be", "that is the question"])


if __name__ == "__main__":
    print(flyte.run(main).outputs()[0])
