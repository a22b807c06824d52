"""Spark plugin configuration and wiring that need no JVM: validation, import hygiene, session planning."""

from __future__ import annotations

import os
import subprocess
import sys

import msgspec
import pytest

import flyte
from flyte.extend import TaskPluginRegistry
from flyteplugins.spark._config import local_parallelism, resolve_master
from flyteplugins.spark._session import SessionPlan, is_runtime_key, session_conf
from flyteplugins.spark.task import GenericSparkConf, GenericSparkTask, PysparkFunctionTask, Spark


def test_import_does_not_load_engines():
    code = (
        "import sys, flyte\n"
        "from flyteplugins.spark.task import Spark, GenericSparkConf, PysparkFunctionTask\n"
        "env = flyte.TaskEnvironment(name='e', plugin_config=Spark())\n"
        "@env.task\n"
        "def f() -> int: return 1\n"
        "heavy = [m for m in ('pyspark', 'py4j', 'ray', 'torch', 'distributed', 'kubernetes_asyncio') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_registered_templates():
    assert TaskPluginRegistry.find(Spark) is PysparkFunctionTask
    assert TaskPluginRegistry.find(GenericSparkConf) is GenericSparkTask
    env = flyte.TaskEnvironment(name="spark_cfg", plugin_config=Spark())

    @env.task
    def body() -> int:
        return 1

    assert isinstance(body, PysparkFunctionTask)
    assert body.task_type == "spark"


def test_seed_field_set_and_frozen():
    pod = flyte.PodTemplate(primary_container_name="spark-driver")
    config = Spark(spark_conf={"spark.executor.instances": "2"}, hadoop_conf={"fs.x": "y"},
                   executor_path="/usr/bin/python3", applications_path="local:///app.py",
                   driver_pod=pod, executor_pod=pod)
    with pytest.raises(AttributeError):
        config.spark_conf = {}  # type: ignore[misc]
    assert msgspec.to_builtins(config)["hadoop_conf"] == {"fs.x": "y"}


@pytest.mark.parametrize("field, value, expected", [
    ("spark_conf", {"spark.executor.instances": 2}, "Spark.spark_conf['spark.executor.instances']: expected a string"),
    ("spark_conf", {"spark.dynamicAllocation.enabled": True}, "write 'true'"),
    ("hadoop_conf", {"fs.s3a.connection.maximum": 10}, "Spark.hadoop_conf['fs.s3a.connection.maximum']"),
    ("spark_conf", {"": "x"}, "Spark.spark_conf: keys must be non-empty strings"),
    ("spark_conf", ["spark.x"], "Spark.spark_conf: expected a dict"),
])
def test_non_string_conf_is_rejected_naming_the_field(field, value, expected):
    with pytest.raises(TypeError) as info:
        Spark(**{field: value})
    assert expected in str(info.value)


@pytest.mark.parametrize("master", ["spark://host", "spark://host:0", "spark://host:99999", "spark:/host:7077",
                                    "locl[2]", "local[0]", "local[two]", "http://x:7077", "spark://a b:7077"])
def test_malformed_master_is_rejected_naming_the_field(master):
    with pytest.raises(ValueError) as info:
        Spark(spark_conf={"spark.master": master})
    message = str(info.value)
    assert message.startswith("Spark.spark_conf['spark.master']:")
    assert repr(master) in message


def test_cluster_managers_of_later_tiers_are_refused_clearly():
    with pytest.raises(ValueError, match="does not drive yet"):
        Spark(spark_conf={"spark.master": "k8s://https://api:6443"})


@pytest.mark.parametrize("master", ["local", "local[1]", "local[*]", "local[2,3]", "local-cluster[2,1,1024]",
                                    "spark://127.0.0.1:7077", "spark://h1:7077,h2:7078", "spark://[::1]:7077"])
def test_valid_masters(master):
    assert resolve_master(Spark(spark_conf={"spark.master": master}).spark_conf) == master


@pytest.mark.parametrize("key, value", [("spark.executor.instances", "0"), ("spark.executor.cores", "x"),
                                        ("spark.executor.memory", "lots"), ("spark.driver.memory", "3 GB")])
def test_bad_sizes_are_rejected(key, value):
    with pytest.raises(ValueError, match=rf"Spark.spark_conf\['{key}'\]"):
        Spark(spark_conf={key: value})


def test_generic_conf_validation():
    GenericSparkConf(main_class="com.example.App", applications_path="/tmp/app.jar")
    with pytest.raises(ValueError, match="GenericSparkConf.main_class"):
        GenericSparkConf(main_class="not a class", applications_path="/tmp/app.jar")
    with pytest.raises(ValueError, match="GenericSparkConf.applications_path"):
        GenericSparkConf(main_class="A", applications_path="/tmp/app.py")
    with pytest.raises(TypeError, match=r"GenericSparkConf.spark_conf\['spark.x'\]"):
        GenericSparkConf(main_class="A", applications_path="a.jar", spark_conf={"spark.x": 1})


def test_local_master_follows_executors_capped_at_cores():
    cores = len(os.sched_getaffinity(0))
    assert resolve_master({"spark.executor.instances": "1"}) == "local[1]"
    assert local_parallelism({"spark.executor.instances": "1", "spark.executor.cores": "1"}) == 1
    assert local_parallelism({"spark.executor.instances": "64", "spark.executor.cores": "4"}) == cores
    assert local_parallelism({}) == min(2, cores)


def test_plan_splits_static_and_runtime_conf():
    plan = SessionPlan.of(Spark(spark_conf={
        "spark.executor.instances": "1", "spark.sql.shuffle.partitions": "3",
        "spark.sql.warehouse.dir": "/w", "spark.sql.extensions": "x.Y", "spark.sql.hive.metastore.version": "2",
    }, hadoop_conf={"fs.a": "b"}))
    assert dict(plan.runtime_conf) == {"spark.sql.shuffle.partitions": "3"}
    assert dict(plan.static_conf) == {"spark.executor.instances": "1", "spark.sql.warehouse.dir": "/w",
                                      "spark.sql.extensions": "x.Y", "spark.sql.hive.metastore.version": "2"}
    assert plan.master == "local[1]"
    assert not plan.attached
    assert is_runtime_key("spark.sql.adaptive.enabled") and not is_runtime_key("spark.executor.memory")
    # Only static settings are in the spec: a runtime setting never costs a restart.
    other = SessionPlan.of(Spark(spark_conf={"spark.executor.instances": "1", "spark.sql.shuffle.partitions": "9",
                                             "spark.sql.warehouse.dir": "/w", "spark.sql.extensions": "x.Y",
                                             "spark.sql.hive.metastore.version": "2"}, hadoop_conf={"fs.a": "b"}))
    assert plan.spec() == other.spec()
    assert plan.spec() != SessionPlan.of(Spark(spark_conf={"spark.executor.instances": "2"})).spec()


def test_session_conf_applies_every_entry_and_user_wins():
    plan = SessionPlan.of(Spark(spark_conf={"spark.log.level": "INFO", "spark.app.name": "mine",
                                            "spark.driver.extraJavaOptions": "-Dx=1", "spark.executor.instances": "1"},
                                hadoop_conf={"fs.custom.key": "v"}))
    conf = session_conf(plan.spec(), "env.task", "/scratch")
    assert conf["spark.log.level"] == "INFO" and conf["spark.app.name"] == "mine"
    assert conf["spark.hadoop.fs.custom.key"] == "v"
    assert conf["spark.master"] == "local[1]"
    assert conf["spark.driver.extraJavaOptions"].endswith("-Dx=1")
    assert "-Djava.io.tmpdir=/scratch/tmp" in conf["spark.driver.extraJavaOptions"]
    default = session_conf(SessionPlan.of(Spark()).spec(), "env.task", "/scratch")
    assert default["spark.log.level"] == "WARN" and default["spark.app.name"] == "env.task"


def test_custom_config_for_remote_backends():
    env = flyte.TaskEnvironment(name="spark_cc", plugin_config=Spark(spark_conf={"spark.executor.instances": "3"}))

    @env.task
    def body() -> None:
        pass

    assert body.custom_config()["sparkConf"] == {"spark.executor.instances": "3"}
    generic = flyte.TaskEnvironment(name="spark_gc", plugin_config=GenericSparkConf(
        main_class="a.B", applications_path="x.jar"))

    @generic.task
    def app() -> None:
        pass

    assert app.custom_config()["mainClass"] == "a.B"


def test_reusable_environment_is_refused():
    with pytest.raises(ValueError, match="does not support reuse"):
        flyte.TaskEnvironment(name="spark_reuse", plugin_config=Spark(), reusable=flyte.ReusePolicy(replicas=1))


def test_missing_java_is_a_clear_error_before_any_launch(monkeypatch, tmp_path):
    env = flyte.TaskEnvironment(name="spark_nojava", plugin_config=Spark(spark_conf={"spark.executor.instances": "1"}))

    @env.task
    def body() -> int:
        return 1

    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    from flyteplugins.spark.task import JavaNotFoundError

    with pytest.raises(JavaNotFoundError, match="JAVA_HOME=.*no-jdk.* has no executable bin/java"):
        flyte.run(body)
    monkeypatch.delenv("JAVA_HOME")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JavaNotFoundError, match="JAVA_HOME is not set and no java is on PATH"):
        flyte.run(body)
    assert flyte.extend.live_engine("spark") is None


def test_dataframe_decoded_without_a_session_is_a_parquet_reference(tmp_path):
    import pandas as pd

    from flyteplugins.spark._dataframe import DATAFRAME_ENCODER, ParquetDataFrame

    path = str(tmp_path / "frame.parquet")
    pd.DataFrame({"x": [1, 2, 3]}).to_parquet(path)
    assert flyte.extend.live_engine("spark") is None
    identity = {"run_name": "r1", "action_name": "a1", "task_name": "t", "raw_data_path": str(tmp_path)}
    with flyte.extend.worker_context(identity):  # a plain task receiving a DataFrame after the engine stopped
        decoded = DATAFRAME_ENCODER.decode(path.encode(), str(tmp_path))
    assert isinstance(decoded, ParquetDataFrame)
    # A run's final output, decoded outside any task: the data itself, as pandas.
    assert DATAFRAME_ENCODER.decode(path.encode(), str(tmp_path))["x"].tolist() == [1, 2, 3]
    assert decoded.to_pandas()["x"].tolist() == [1, 2, 3]
    # Passed on again, it keeps pointing at the same file rather than being rewritten.
    assert DATAFRAME_ENCODER.encode(decoded, str(tmp_path)) == path.encode()
    assert "pyspark.sql.dataframe.DataFrame" in DATAFRAME_ENCODER.type_names
