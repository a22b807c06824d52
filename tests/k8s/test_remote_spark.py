"""Spark tasks run remotely as SparkApplications against the Kubernetes API server double and its fake Spark operator
(whose driver pods run a real spark-submit on a local master): a JVM application (GenericSparkConf), the ways a call
fails (the task's exception, an application that cannot be submitted, a main class that does not load), a call cut
short by Ctrl-C or by its timeout, and flyte-sdk's published Spark example with the same output as its local run.
After each, no object and no process is left, the JVM included."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from _k8s_testkit import HERE, REAL_CLUSTER, outputs_json, run_program, wait_clean

pytestmark = [pytest.mark.k8s, pytest.mark.spark, pytest.mark.slow]

PROGRAMS = HERE / "programs"
PENDING_TIMEOUT = 240

JAVA_SOURCE = """
package flytetest;

import java.util.ArrayList;
import java.util.List;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;

public class SumApp {
    public static void main(String[] args) {
        SparkSession spark = SparkSession.builder().appName("sum").getOrCreate();
        JavaSparkContext context = new JavaSparkContext(spark.sparkContext());
        int n = Integer.parseInt(spark.conf().get("spark.flyte.test.n", "10"));
        List<Integer> numbers = new ArrayList<>();
        for (int i = 1; i <= n; i++) numbers.add(i);
        long total = context.parallelize(numbers, 4).map(x -> (long) x).reduce(Long::sum);
        System.out.println("jvm sum of 1.." + n + " = " + total + " on " + context.master());
        spark.stop();
    }
}
"""


@pytest.fixture
def config_dir(config_dir):
    """The remote config, with room for a driver JVM to come up on a loaded machine."""
    import yaml

    config = yaml.safe_load((config_dir / "config.yaml").read_text())
    config["kubernetes"]["pending_timeout"] = PENDING_TIMEOUT
    (config_dir / "config.yaml").write_text(yaml.safe_dump(config))
    return config_dir


@pytest.fixture(scope="module")
def spark_jar(tmp_path_factory):
    """A small Java Spark application (Spark's Java API on the installed pyspark's jars), compiled here."""
    import pyspark

    if shutil.which("javac") is None or shutil.which("jar") is None:
        pytest.fail("the JDK's javac and jar are needed (apt-get install openjdk-17-jdk-headless)")
    root = tmp_path_factory.mktemp("sparkjar")
    source = root / "src" / "flytetest" / "SumApp.java"
    source.parent.mkdir(parents=True)
    source.write_text(textwrap.dedent(JAVA_SOURCE))
    jars = os.path.join(os.path.dirname(pyspark.__file__), "jars", "*")
    subprocess.run(["javac", "-cp", jars, "-d", str(root / "classes"), str(source)], check=True, timeout=300)
    jar = root / "sum.jar"
    subprocess.run(["jar", "cf", str(jar), "-C", str(root / "classes"), "."], check=True, timeout=120)
    return jar


def _left(kube) -> list[str]:
    left = wait_clean(kube)
    return left + [f"sparkapplications/{o['metadata']['name']}" for o in kube.objects("sparkapplications", "default")]


def _gone(pids: list[int], timeout: float = 30.0) -> list[int]:
    """The processes among ``pids`` still alive after ``timeout``."""
    import psutil

    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def _submitted_applications(kube) -> set[str]:
    """The uids of the SparkApplications the operator has said anything about (its Events outlive them)."""
    return {(e.get("involvedObject") or {}).get("uid") for e in kube.objects("events", "default")
            if (e.get("involvedObject") or {}).get("kind") == "SparkApplication"}


def test_generic_spark_task_runs_its_jvm_application(config_dir, kube, spark_jar):
    """GenericSparkConf -> a SparkApplication of type Java whose driver runs the jar's main class with spark-submit:
    COMPLETED gives None (the application writes no outputs document); a main class that does not load FAILS the
    driver, and the caller gets spark-submit's message; a task declaring an output is refused before submission."""
    if REAL_CLUSTER:
        pytest.skip("the jar is a file of this machine")
    before = None if REAL_CLUSTER else _submitted_applications(kube)
    remote = run_program("spark_jvm.py", str(spark_jar), cwd=config_dir, timeout=400)
    assert remote.returncode == 0, remote.stderr[-5000:]
    result = outputs_json(remote)
    assert result["sum"] == {"value": None}, result
    # The application's own output, from the driver pod's log.
    assert any(line.startswith("[") and "jvm sum of 1..100 = 5050 on local[" in line
               for line in remote.stderr.splitlines()), remote.stderr[-5000:]
    missing = result["missing"]
    assert missing["error"] == "RuntimeUserError" and missing["code"] == "FAILED", missing
    assert "failed: FAILED: driver container failed with ExitCode: 101" in missing["message"], missing
    assert "Failed to load class flytetest.Nope" in missing["message"], missing  # the driver's own words
    refused = result["with_output"]
    assert refused["error"] == "NonRecoverableError" and refused["code"] == "GenericSparkOutput", refused
    assert "declares an output (int)" in refused["message"] and "-> None" in refused["message"], refused
    # Two applications were submitted (sum, missing); the refused task never became one.
    assert len(_submitted_applications(kube) - before) == 2
    assert _left(kube) == []


def test_failed_and_unsubmittable_spark_applications_fail_their_calls(config_dir, kube):
    """FAILED: the user's exception comes back as its own type. SUBMISSION_FAILED (the API server refuses the driver
    pod, whose cpu request is not a quantity): the call fails at once, naming the state and the operator's message,
    instead of waiting out pending_timeout."""
    remote = run_program("spark_failures.py", cwd=config_dir, timeout=PENDING_TIMEOUT + 300)
    assert remote.returncode == 0, remote.stderr[-5000:]
    result = outputs_json(remote)
    failed = result["failed"]
    assert failed["error"] == "LedgerError" and failed["user_type"], failed
    assert failed["message"] == "counted 10 rows, expected none", failed
    submission = result["submission"]
    assert submission["error"] == "RuntimeSystemError" and submission["code"] == "SUBMISSION_FAILED", submission
    assert "SUBMISSION_FAILED: failed to run spark-submit" in submission["message"], submission
    assert '"one"' in submission["message"] and "cpu" in submission["message"], submission  # the API server's words
    assert submission["seconds"] < PENDING_TIMEOUT / 2, submission
    if not REAL_CLUSTER:
        assert _left(kube) == []


def test_published_spark_example_runs_remotely_as_locally(config_dir, kube, tmp_path):
    remote = run_program("spark_process_data.py", cwd=config_dir, timeout=300)
    assert remote.returncode == 0, remote.stderr[-5000:]
    elsewhere = tmp_path / "no-config"
    elsewhere.mkdir()
    local = run_program("spark_process_data.py", cwd=elsewhere, timeout=300)
    assert local.returncode == 0, local.stderr[-5000:]
    assert outputs_json(remote) == outputs_json(local) == {"process_data": 999}
    assert "[a1 spark_env.process_data] " in remote.stderr  # the driver pod's log
    assert "[a1 spark_env.process_data] " not in local.stderr
    if not REAL_CLUSTER:
        assert _left(kube) == []


def _start(mode: str, config_dir, tmp_path, **env: str) -> tuple[subprocess.Popen, object, object]:
    # Files, not pipes: a Spark driver's log is long, and a full pipe would stall the program.
    out, err = open(tmp_path / "out.txt", "w+"), open(tmp_path / "err.txt", "w+")  # noqa: SIM115
    program = subprocess.Popen([sys.executable, str(PROGRAMS / "spark_cut_short.py"), mode], cwd=config_dir,
                               stdout=out, stderr=err, text=True, env={**os.environ, **env})
    return program, out, err


def _text(file) -> str:
    file.seek(0)
    return file.read()


def test_ctrl_c_deletes_a_running_spark_application(config_dir, kube, tmp_path):
    if REAL_CLUSTER:
        pytest.skip("reads the double's objects and processes")
    mark = tmp_path / "mark"
    program, out, err = _start("ctrl-c", config_dir, tmp_path, SPARK_MARK=str(mark))
    try:
        deadline = time.monotonic() + PENDING_TIMEOUT
        while not (mark.exists() and mark.read_text()):
            assert program.poll() is None, _text(err)[-5000:]
            assert time.monotonic() < deadline, "the Spark task's body never ran\n" + _text(err)[-5000:]
            time.sleep(0.2)
        pids = [int(pid) for pid in mark.read_text().split()]
        [app] = kube.objects("sparkapplications", "default")
        assert app["status"]["applicationState"]["state"] == "RUNNING"
        program.send_signal(signal.SIGINT)
        program.wait(timeout=120)
    finally:
        program.kill()
        program.wait()
    assert program.returncode != 0
    assert _left(kube) == []
    assert _gone(pids) == [], "the driver's Python or its JVM outlived the SparkApplication"


def test_a_timed_out_spark_call_deletes_its_spark_application(config_dir, kube, tmp_path):
    if REAL_CLUSTER:
        pytest.skip("reads the double's objects and processes")
    mark = tmp_path / "mark"
    program, out, err = _start("timeout", config_dir, tmp_path, SPARK_MARK=str(mark), SPARK_TIMEOUT="60")
    driver_ran = False
    try:
        deadline = time.monotonic() + 300
        while program.poll() is None:
            assert time.monotonic() < deadline, "the timed-out call never returned\n" + _text(err)[-5000:]
            driver_ran = driver_ran or any(
                (p.get("status") or {}).get("phase") == "Running" and p["metadata"]["name"].endswith("-driver")
                for p in kube.objects("pods", "default"))
            time.sleep(0.2)
    finally:
        program.kill()
        program.wait()
    assert "TIMED OUT" in _text(out), _text(out) + _text(err)[-5000:]
    assert driver_ran, "the driver pod never ran before the timeout"
    assert _left(kube) == []
    if mark.exists() and mark.read_text():  # the body got to run: its JVM and Python must be gone too
        assert _gone([int(pid) for pid in mark.read_text().split()]) == []

