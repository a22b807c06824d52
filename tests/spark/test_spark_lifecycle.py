"""The session's lifecycle: stopped with no JVM, Python worker or temp dir left after a run that fails, times out,
is cancelled, after user code stopped the session itself, and at interpreter exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import anyio
import pytest
from spark_leaks import engine_children

import flyte
from flyte.errors import TaskTimeoutError
from flyteplugins.spark.task import Spark

pytestmark = [pytest.mark.spark, pytest.mark.slow]

env = flyte.TaskEnvironment(name="spark_life", plugin_config=Spark(spark_conf={"spark.executor.instances": "1",
                                                                               "spark.ui.enabled": "false"}))
driver_env = flyte.TaskEnvironment(name="spark_life_driver")


@env.task
async def app_id() -> str:
    return flyte.ctx().data["spark_session"].sparkContext.applicationId


@env.task
async def stop_it_myself() -> str:
    session = flyte.ctx().data["spark_session"]
    name = session.sparkContext.applicationId
    session.stop()  # user code may do this (flytekit's examples do): the next call must get a working session
    return name


@env.task
def failing_udf() -> int:
    session = flyte.ctx().data["spark_session"]

    def explode(x: int) -> int:
        raise ValueError(f"bad row {x}")

    return session.sparkContext.parallelize([1, 2], 1).map(explode).count()


@env.task
def sleeper(marker: str) -> int:
    session = flyte.ctx().data["spark_session"]
    with open(marker, "w") as handle:
        handle.write(str(os.getpid()))

    def nap(x: int) -> int:
        time.sleep(600)
        return x

    return session.sparkContext.parallelize([1], 1).map(nap).count()


@driver_env.task
async def stop_then_fail() -> None:
    first = await stop_it_myself()
    second = await app_id()
    assert second != first, "a stopped session must be replaced, not handed out again"
    await failing_udf()


@driver_env.task
async def warm_then_time_out(marker: str) -> None:
    await app_id()  # the session is up, so the timeout below is spent inside the job
    await sleeper.override(timeout=4)(marker)


def test_user_stop_then_failure_leaves_nothing(leak_check):
    started = time.monotonic()
    with pytest.raises(Exception) as info:
        flyte.run(stop_then_fail)
    # Still a pyspark error, and printable although the run has stopped the JVM that raised it.
    from pyspark.errors import PythonException

    assert isinstance(info.value, PythonException), type(info.value)
    assert "bad row" in str(info.value) and "bad row" in repr(info.value)
    assert flyte.extend.live_engine("spark") is None
    assert time.monotonic() - started < 240


def test_timeout_mid_job_leaves_nothing(leak_check, tmp_path):
    marker = tmp_path / "started"
    with pytest.raises(TaskTimeoutError, match="exceeded its timeout of 4s"):
        flyte.run(warm_then_time_out, str(marker))
    assert marker.exists(), "the job must have started before the timeout"


def test_cancellation_mid_job_leaves_nothing(leak_check, tmp_path):
    marker = tmp_path / "started"
    outcome = {}

    async def main() -> None:
        async with anyio.create_task_group() as group:
            async def run_it() -> None:
                try:
                    await flyte.run.aio(sleeper, str(marker))
                except anyio.get_cancelled_exc_class():
                    outcome["cancelled"] = True
                    raise

            group.start_soon(run_it)
            deadline = time.monotonic() + 180
            while not marker.exists() and time.monotonic() < deadline:
                await anyio.sleep(0.2)
            outcome["java_while_running"] = bool(engine_children())
            group.cancel_scope.cancel()

    anyio.run(main)
    assert outcome == {"cancelled": True, "java_while_running": True}


def test_interpreter_exit_stops_the_session(tmp_path):
    """A run still going when the program exits: the atexit stop removes the scratch dir and ends the JVM."""
    script = tmp_path / "exits_mid_run.py"
    report = tmp_path / "report.json"
    script.write_text(textwrap.dedent(f"""
        import json, threading, time
        import flyte
        from flyteplugins.spark.task import Spark

        env = flyte.TaskEnvironment(name="spark_exit", plugin_config=Spark(spark_conf={{
            "spark.executor.instances": "1", "spark.ui.enabled": "false"}}))

        @env.task
        def hold() -> None:
            from pyspark import SparkContext
            session = flyte.ctx().data["spark_session"]
            tmpdir = session.sparkContext._jvm.java.lang.System.getProperty("java.io.tmpdir")
            with open({str(report)!r}, "w") as handle:
                json.dump({{"pid": SparkContext._gateway.proc.pid, "tmpdir": tmpdir}}, handle)
            time.sleep(600)

        threading.Thread(target=lambda: flyte.run(hold), daemon=True).start()
        deadline = time.time() + 240
        while not __import__("os").path.exists({str(report)!r}) and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
    """))
    env_vars = {**os.environ, "TMPDIR": str(tmp_path), "FLYTE_PROGRESS": "quiet"}
    subprocess.run([sys.executable, str(script)], check=True, timeout=290, env=env_vars,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    info = json.loads(report.read_text())
    import psutil

    deadline = time.monotonic() + 15
    while psutil.pid_exists(info["pid"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not psutil.pid_exists(info["pid"]), "the session's JVM outlived the program"
    scratch = os.path.dirname(info["tmpdir"])
    assert os.path.basename(scratch).startswith("flyte-spark-")
    assert not os.path.exists(scratch), "the scratch dir must be removed at exit"
