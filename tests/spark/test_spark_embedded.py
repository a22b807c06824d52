"""The embedded tier against a real local SparkSession. One run exercises everything (a driver task calling Spark
tasks), so the module costs three session starts: the tests below each check one part of its results."""

from __future__ import annotations

import asyncio
import os
import tempfile

import pytest
from pyspark.sql import DataFrame
from spark_leaks import assert_no_engine_left, engine_children, spark_temp_dirs

import flyte
from flyteplugins.spark.task import PysparkFunctionTask, Spark

pytestmark = [pytest.mark.spark, pytest.mark.slow]

STATIC = {"spark.flyte.test.marker": "static-m1", "spark.driver.memory": "768m", "spark.ui.port": "4140"}
MAIN = Spark(spark_conf={**STATIC, "spark.executor.instances": "2", "spark.sql.shuffle.partitions": "7",
                         "spark.flyte.test.only_main": "yes"},
             hadoop_conf={"fs.flyte.test.key": "hadoop-v1"})
ONE = Spark(spark_conf={**STATIC, "spark.executor.instances": "1"}, hadoop_conf={"fs.flyte.test.key": "hadoop-v1"})
# Same static settings as MAIN, other runtime settings: must share MAIN's session.
MAIN_NO_RUNTIME = Spark(spark_conf={**STATIC, "spark.executor.instances": "2", "spark.flyte.test.only_main": "yes"},
                        hadoop_conf={"fs.flyte.test.key": "hadoop-v1"})
# Another driver memory: a JVM-level setting, so a new JVM.
OTHER_JVM = Spark(spark_conf={**STATIC, "spark.driver.memory": "640m", "spark.executor.instances": "1"},
                  hadoop_conf={"fs.flyte.test.key": "hadoop-v1"})

spark_env = flyte.TaskEnvironment(name="spark_embedded", plugin_config=MAIN)
driver_env = flyte.TaskEnvironment(name="spark_driver")


def shout(text: str) -> str:
    """A module-level helper: Python workers must import this module (from the code bundle) to run the UDF."""
    return text.upper() + "!"


@spark_env.task
def inspect_session() -> dict:
    from pyspark import SparkFiles
    from pyspark.sql import SparkSession
    from pyspark.sql.functions import col, udf

    session = flyte.ctx().data["spark_session"]
    sc = session.sparkContext
    shouted = udf(lambda s: shout(s))
    words = session.createDataFrame([("a",), ("b",)], ["w"]).select(shouted(col("w")).alias("s"))
    return {
        "same_as_builder": SparkSession.builder.getOrCreate() is session,
        "marker": session.conf.get("spark.flyte.test.marker"),
        "driver_memory": sc.getConf().get("spark.driver.memory"),
        "hadoop": sc._jsc.hadoopConfiguration().get("fs.flyte.test.key"),
        "shuffle_partitions": session.conf.get("spark.sql.shuffle.partitions"),
        "app_name": sc.appName,
        "app_id": sc.applicationId,
        "master": sc.master,
        "parallelism": sc.defaultParallelism,
        "log_level": sc._jvm.org.apache.logging.log4j.LogManager.getRootLogger().getLevel().toString(),
        "tmpdir": sc._jvm.java.lang.System.getProperty("java.io.tmpdir"),
        "spark_files_root": SparkFiles.getRootDirectory(),
        "udf": sorted(row.s for row in words.collect()),
        "pids": [p.pid for p in engine_children()],
    }


@spark_env.task
async def runtime_conf_restored() -> dict:
    from pyspark.sql import SparkSession

    session = flyte.ctx().data["spark_session"]
    return {"shuffle_partitions": session.conf.get("spark.sql.shuffle.partitions"),
            "app_id": session.sparkContext.applicationId,
            "active_on_loop_thread": SparkSession.getActiveSession() is session}


@spark_env.task
async def make_frame(n: int) -> DataFrame:
    session = flyte.ctx().data["spark_session"]
    return session.range(n).withColumnRenamed("id", "x")


@spark_env.task
async def sum_frame(frame: DataFrame) -> dict:
    session = flyte.ctx().data["spark_session"]
    return {"sum": frame.groupBy().sum("x").collect()[0][0], "bound": frame.sparkSession is session,
            "app_id": session.sparkContext.applicationId}


@spark_env.task
def conf_probe() -> dict:
    session = flyte.ctx().data["spark_session"]
    sc = session.sparkContext
    return {"instances": session.conf.get("spark.executor.instances"), "parallelism": sc.defaultParallelism,
            "master": sc.master, "app_id": sc.applicationId, "jvm_pid": sc._jvm.java.lang.ProcessHandle.current().pid(),
            "only_main": sc.getConf().get("spark.flyte.test.only_main", None),
            "driver_memory": sc.getConf().get("spark.driver.memory")}


@driver_env.task
async def driver() -> dict:
    results: dict = {}
    frame = await make_frame(10)
    results["frame_type"] = type(frame).__name__
    first_app = (await conf_probe())["app_id"]
    # The must-show: the same Spark task with 1 and then 2 executor instances sees the change.
    results["probe_1"] = await conf_probe.override(plugin_config=ONE)()
    results["sum_after_restart"] = await sum_frame.override(plugin_config=ONE)(frame)
    results["probe_2"] = await conf_probe.override(plugin_config=MAIN)()
    results["inspect"] = await inspect_session()
    results["restored"] = await runtime_conf_restored.override(plugin_config=MAIN_NO_RUNTIME)()
    results["sum_same_session"] = await sum_frame(await make_frame(5))
    results["concurrent"] = await asyncio.gather(sum_frame(frame), sum_frame(frame), conf_probe())
    results["other_jvm"] = await conf_probe.override(plugin_config=OTHER_JVM)()
    results["first_app"] = first_app
    return results


@pytest.fixture(scope="module")
def results():
    before = spark_temp_dirs()
    run = flyte.run(driver)
    run.before_dirs = before  # type: ignore[attr-defined]
    return run


@pytest.fixture(scope="module")
def out(results):
    return results.outputs()[0]


def test_seed_example_runs_as_written():
    """The distributed-compute page's Spark example, unchanged but for the name."""
    spark_conf = Spark(
        spark_conf={
            "spark.driver.memory": "3000M",
            "spark.executor.memory": "1000M",
            "spark.executor.instances": "2",
        },
    )
    env = flyte.TaskEnvironment(name="spark_env", plugin_config=spark_conf, image="ghcr.io/flyteorg/spark-py:v3.4.0")

    @env.task
    async def process_data(partitions: int = 3) -> float:
        spark = flyte.ctx().data["spark_session"]
        df = spark.range(1, 1000).toDF("number")
        return df.count()

    assert isinstance(process_data, PysparkFunctionTask)
    before = spark_temp_dirs()
    assert flyte.run(process_data).outputs()[0] == 999.0
    assert_no_engine_left(before)


def test_executor_count_override_resizes_the_session(out):
    one, two = out["probe_1"], out["probe_2"]
    cores = len(os.sched_getaffinity(0))
    assert (one["instances"], one["master"], one["parallelism"]) == ("1", "local[1]", 1)
    assert (two["instances"], two["master"], two["parallelism"]) == ("2", f"local[{min(2, cores)}]", min(2, cores))
    assert len({out["first_app"], one["app_id"], two["app_id"]}) == 3  # each resize is a fresh SparkContext


def test_a_resize_keeps_the_jvm_and_takes_only_the_new_settings(out):
    one, two, other = out["probe_1"], out["probe_2"], out["other_jvm"]
    assert one["jvm_pid"] == two["jvm_pid"], "executors alone changed: the JVM must be kept (a new SparkContext)"
    # The JVM started for MAIN; ONE lacks MAIN's extra key, and must not inherit it from the JVM.
    assert (two["only_main"], one["only_main"]) == ("yes", None)
    assert other["jvm_pid"] != two["jvm_pid"] and other["driver_memory"] == "640m"  # a JVM setting: a new JVM


def test_every_conf_entry_and_hadoop_conf_applied(out):
    inspect = out["inspect"]
    assert inspect["marker"] == "static-m1"
    assert inspect["driver_memory"] == "768m"
    assert inspect["hadoop"] == "hadoop-v1"
    assert inspect["shuffle_partitions"] == "7"


def test_session_is_shared_and_builder_returns_it(out):
    inspect = out["inspect"]
    assert inspect["same_as_builder"]
    assert inspect["app_name"] == "spark_embedded.conf_probe"  # named after the task that started it
    # Later calls with the same static settings share the session; runtime settings do not leak into them.
    assert out["restored"]["app_id"] == inspect["app_id"] == out["probe_2"]["app_id"]
    assert out["restored"]["shuffle_partitions"] == "200"
    assert out["restored"]["active_on_loop_thread"]
    # Concurrent calls with the same settings share the live session too.
    first, second, probe = out["concurrent"]
    assert first["sum"] == second["sum"] == 45 and first["app_id"] == second["app_id"] == probe["app_id"]


def test_quiet_logs_scratch_dirs_and_ui_link(results, out):
    inspect = out["inspect"]
    assert inspect["log_level"] == "WARN"
    scratch = os.path.dirname(inspect["tmpdir"])
    assert os.path.basename(scratch).startswith("flyte-spark-")
    assert inspect["spark_files_root"].startswith(scratch + os.sep)
    links = [action.links.get("Spark UI") for root in results.actions for action in root.walk()]
    assert any(link and link.startswith("http") and ":41" in link for link in links)


def test_udf_from_user_module_runs_in_python_workers(out):
    assert out["inspect"]["udf"] == ["A!", "B!"]


def test_dataframes_cross_task_boundaries(out):
    assert out["frame_type"] == "DataFrame"
    # Read back in a restarted session (other static settings) and in the same one.
    assert out["sum_after_restart"]["sum"] == 45 and out["sum_after_restart"]["bound"]
    assert out["sum_same_session"] == {"sum": 10, "bound": True, "app_id": out["inspect"]["app_id"]}


def test_no_jvm_or_temp_dir_after_the_run(results, out):
    assert out["inspect"]["pids"], "the test must have seen the session's JVM"
    assert_no_engine_left(results.before_dirs)
    assert flyte.extend.live_engine("spark") is None
    assert not [p for p in os.listdir(tempfile.gettempdir()) if p.startswith("flyte-")]
