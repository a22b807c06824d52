"""The attach tier: a Spark task against a real standalone master and worker, started here from pyspark's own launch
classes. The UDF lives in a user module that is not installed anywhere: only the shipped code bundle provides it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import psutil
import pytest
from spark_leaks import assert_no_engine_left, spark_temp_dirs

import flyte
from flyteplugins.spark._runtime import spark_script
from flyteplugins.spark.task import Spark

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _launch(args: list[str], env: dict[str, str], log_path: str) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen([spark_script("spark-class"), *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=15)


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory):
    """A standalone master and one small worker on localhost; killed (by process group) when the module ends."""
    root = tmp_path_factory.mktemp("standalone")
    port, ui_port, worker_ui = _free_port(), _free_port(), _free_port()
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOCAL_DIRS": str(root / "local"),
           "SPARK_WORKER_DIR": str(root / "work"), "SPARK_LOG_DIR": str(root / "logs"),
           "SPARK_DAEMON_JAVA_OPTS": f"-Djava.io.tmpdir={root}", "SPARK_DAEMON_MEMORY": "256m"}
    master_url = f"spark://127.0.0.1:{port}"
    master = _launch(["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                      "--webui-port", str(ui_port)], env, str(root / "master.log"))
    worker = _launch(["org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1", "--cores", "1",
                      "--memory", "768m", "--webui-port", str(worker_ui), "--work-dir", str(root / "work")],
                     env, str(root / "worker.log"))
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as answer:
                    state = json.load(answer)
                if any(w.get("state") == "ALIVE" for w in state.get("workers", [])):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or master.poll() is not None or worker.poll() is not None:
                logs = "\n".join((root / name).read_text()[-2000:] for name in ("master.log", "worker.log"))
                raise RuntimeError(f"standalone cluster did not come up:\n{logs}")
            time.sleep(0.5)
        yield {"url": master_url, "worker_pid": worker.pid, "master_pid": master.pid, "root": root}
    finally:
        _stop(worker)
        _stop(master)


@pytest.fixture(scope="module")
def user_module(tmp_path_factory):
    """A module importable here only through sys.path: not installed, unknown to the cluster's Python."""
    directory = tmp_path_factory.mktemp("usercode")
    (directory / "spark_attach_udfs.py").write_text(textwrap.dedent("""
        import os

        def decorate(text):
            return f"<{text}>"

        def where():
            return __file__, os.getpid(), os.getcwd()
    """))
    sys.path.insert(0, str(directory))
    try:
        import spark_attach_udfs

        yield spark_attach_udfs
    finally:
        sys.path.remove(str(directory))
        sys.modules.pop("spark_attach_udfs", None)


def test_udf_from_user_module_runs_on_the_standalone_cluster(standalone_cluster, user_module):
    config = Spark(spark_conf={"spark.master": standalone_cluster["url"], "spark.driver.host": "127.0.0.1",
                               "spark.executor.memory": "512m", "spark.cores.max": "1",
                               "spark.ui.enabled": "false"})
    env = flyte.TaskEnvironment(name="spark_attach", plugin_config=config)

    @env.task
    def decorate_on_cluster(words: list[str]) -> dict:
        from pyspark.sql.functions import col, udf

        session = flyte.ctx().data["spark_session"]
        decorate = udf(lambda s: user_module.decorate(s))
        frame = session.createDataFrame([(w,) for w in words], ["w"]).select(decorate(col("w")).alias("d"))
        located = session.sparkContext.parallelize([0], 1).map(lambda _: user_module.where()).collect()[0]
        return {"master": session.sparkContext.master, "decorated": sorted(r.d for r in frame.collect()),
                "module_file": located[0], "worker_python_pid": located[1], "worker_cwd": located[2]}

    before = spark_temp_dirs()
    out = flyte.run(decorate_on_cluster, ["x", "y"]).outputs()[0]
    assert out["master"] == standalone_cluster["url"]
    assert out["decorated"] == ["<x>", "<y>"]
    # Imported on the executor, in the worker's app directory, from the shipped bundle zip.
    assert ".zip" + os.sep + "spark_attach_udfs.py" in out["module_file"], out["module_file"]
    assert out["worker_cwd"].startswith(str(standalone_cluster["root"] / "work")), out["worker_cwd"]
    # The Python worker ran under the standalone worker's executor, not in a local session.
    assert not psutil.pid_exists(out["worker_python_pid"]) or standalone_cluster["worker_pid"] in [
        p.pid for p in psutil.Process(out["worker_python_pid"]).parents()]
    # The driver JVM, the executor the worker launched for it and their Python workers are all gone.
    assert_no_engine_left(before, keep=frozenset({standalone_cluster["worker_pid"], standalone_cluster["master_pid"]}))
