"""GenericSparkTask: spark-submit of a tiny Java application compiled here with the JDK's javac."""

from __future__ import annotations

import shutil
import subprocess
import textwrap

import pytest
from spark_leaks import engine_children

import flyte
from flyteplugins.spark.task import GenericSparkConf, GenericSparkTask, SparkSubmitError

pytestmark = [pytest.mark.spark, pytest.mark.slow]

JAVA_SOURCE = """
package flytetest;

public class Echo {
    public static void main(String[] args) {
        String conf = System.getProperty("spark.flyte.test.greeting", "none");
        String hadoop = System.getProperty("spark.hadoop.fs.flyte.key", "none");
        String fail = System.getProperty("spark.flyte.test.exit", "0");
        long sleep = Long.parseLong(System.getProperty("spark.flyte.test.sleep", "0"));
        if (sleep > 0) {
            System.out.println("sleeping");
            System.out.flush();
            try { Thread.sleep(sleep); } catch (InterruptedException e) { }
        }
        System.out.println("greeting=" + conf + " hadoop=" + hadoop);
        if (!fail.equals("0")) {
            System.err.println("application failed on purpose");
            System.exit(Integer.parseInt(fail));
        }
    }
}
"""


@pytest.fixture(scope="module")
def app_jar(tmp_path_factory):
    if shutil.which("javac") is None or shutil.which("jar") is None:
        pytest.fail("the JDK's javac and jar are needed (apt-get install openjdk-17-jdk-headless)")
    root = tmp_path_factory.mktemp("javaapp")
    source = root / "src" / "flytetest" / "Echo.java"
    source.parent.mkdir(parents=True)
    source.write_text(textwrap.dedent(JAVA_SOURCE))
    classes = root / "classes"
    subprocess.run(["javac", "-d", str(classes), str(source)], check=True, timeout=120)
    jar = root / "echo.jar"
    subprocess.run(["jar", "cf", str(jar), "-C", str(classes), "."], check=True, timeout=120)
    return str(jar)


def test_spark_submit_runs_the_application(app_jar):
    env = flyte.TaskEnvironment(name="spark_generic", plugin_config=GenericSparkConf(
        main_class="flytetest.Echo", applications_path=app_jar,
        spark_conf={"spark.flyte.test.greeting": "hello"}, hadoop_conf={"fs.flyte.key": "hv"}))

    @env.task
    def echo() -> str:
        return flyte.ctx().data["spark_submit_stdout"].strip()

    assert isinstance(echo, GenericSparkTask)
    assert flyte.run(echo).outputs()[0] == "greeting=hello hadoop=hv"
    assert not engine_children()


def test_spark_submit_failure_carries_exit_code_and_stderr(app_jar):
    env = flyte.TaskEnvironment(name="spark_generic_fail", plugin_config=GenericSparkConf(
        main_class="flytetest.Echo", applications_path=app_jar, spark_conf={"spark.flyte.test.exit": "3"}))

    @env.task
    def echo() -> None:
        raise AssertionError("the body must not run when the application failed")

    with pytest.raises(SparkSubmitError) as info:
        flyte.run(echo)
    assert info.value.returncode == 3
    assert "application failed on purpose" in info.value.stderr_tail
    assert "exited with code 3" in str(info.value) and "application failed on purpose" in str(info.value)
    assert not engine_children()


def test_spark_submit_of_a_missing_class_fails_clearly(app_jar):
    env = flyte.TaskEnvironment(name="spark_generic_missing", plugin_config=GenericSparkConf(
        main_class="flytetest.Nope", applications_path=app_jar))

    @env.task
    def nope() -> None:
        pass

    with pytest.raises(SparkSubmitError, match="ClassNotFoundException|Failed to load class"):
        flyte.run(nope)


def test_spark_submit_timeout_kills_the_application(app_jar):
    env = flyte.TaskEnvironment(name="spark_generic_slow", plugin_config=GenericSparkConf(
        main_class="flytetest.Echo", applications_path=app_jar, spark_conf={"spark.flyte.test.sleep": "600000"}))

    @env.task(timeout=8)
    def slow() -> None:
        pass

    from flyte.errors import TaskTimeoutError

    with pytest.raises(TaskTimeoutError):
        flyte.run(slow)
    assert not engine_children(), "spark-submit's JVM must be killed with the task"
