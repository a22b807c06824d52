"""DatabricksV2 tasks end to end on the Jobs API double: the function runs in the double's spark-submit driver
(through the SDK's runtime entry point, its code, inputs and outputs on S3) with the cluster's SparkSession, and its
value or its exception with the cluster's traceback comes back; a conf's own program is submitted as it is; runs are
cancelled on Databricks on cancellation, timeout and Ctrl-C; the token appears nowhere."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import anyio
import msgspec
import pytest
from _databricks_testkit import BUCKET, DEFAULT_CLUSTER, TOKEN

import flyte
from flyte.errors import RuntimeUserError, TaskTimeoutError
from flyteplugins.spark.task import DatabricksApiError, DatabricksRunError, DatabricksRunTimeoutError, DatabricksV2

pytestmark = [pytest.mark.databricks, pytest.mark.spark, pytest.mark.slow]

CLUSTER = {"spark_version": "15.4.x-scala2.12", "node_type_id": "m5.xlarge", "num_workers": 2}
env = flyte.TaskEnvironment(name="dbx", env_vars={"DBX_STAGE": "test"}, plugin_config=DatabricksV2(
    databricks_conf={"run_name": "flyte-test", "new_cluster": CLUSTER, "timeout_seconds": 600,
                     "libraries": [{"pypi": {"package": "flyte-distributed[databricks]"}}]}))


@env.task
def squares_sum(n: int) -> tuple[int, str, bool]:
    from pyspark.sql import SparkSession

    spark = flyte.ctx().data["spark_session"]
    assert os.environ["DATABRICKS_RUNTIME_VERSION"] == "15.4" and os.environ["DBX_STAGE"] == "test"
    total = spark.sparkContext.parallelize(range(n), 2).map(lambda x: x * x).sum()
    # The driver's own session (spark-submit's JVM), the one getOrCreate() gives user code, not a new one.
    attached = bool(os.environ.get("PYSPARK_GATEWAY_PORT")) and SparkSession.builder.getOrCreate() is spark
    return total, spark.sparkContext.master, attached


@env.task
async def explode(n: int) -> int:
    spark = flyte.ctx().data["spark_session"]

    def check(value: int) -> int:
        raise ValueError(f"bad input {value}")

    assert spark.sparkContext.defaultParallelism == 2
    return check(n)


@env.task
def nap(seconds: float) -> int:
    assert flyte.ctx().data["spark_session"] is not None
    time.sleep(seconds)
    return 0


def user_program(python_file: str, **conf) -> DatabricksV2:
    """A conf whose own program runs on the default cluster."""
    return DatabricksV2({"existing_cluster_id": DEFAULT_CLUSTER, **conf,
                         "spark_python_task": {"python_file": python_file, "parameters": ["--who", "tests"]}})


own_env = flyte.TaskEnvironment(name="dbx_own", plugin_config=user_program("dbfs:/flyte-tests/hello.py"))


@own_env.task
def report_logs() -> str:
    run = flyte.ctx().data["databricks_run"]
    assert run["state"]["result_state"] == "SUCCESS"
    return flyte.ctx().data["databricks_logs"]


@pytest.fixture
def dbfs(jobs_double):
    """Write a file on the double's DBFS; returns its dbfs:/ path."""
    def write(path: str, text: str) -> str:
        local = os.path.join(jobs_double.root, "dbfs", path)
        os.makedirs(os.path.dirname(local), exist_ok=True)
        with open(local, "w") as handle:
            handle.write(textwrap.dedent(text))
        return f"dbfs:/{path}"
    return write


def new_runs(double, before):
    return [double.run(run_id) for run_id in sorted(set(double.runs) - before)]


def test_function_runs_on_the_cluster_with_its_spark_session(workspace, jobs_double, s3):
    before = set(jobs_double.runs)
    run = flyte.run(squares_sum, 10)
    assert run.outputs()[0] == 285 and run.outputs()[1] == "local[2]" and run.outputs()[2] is True
    (dbx,) = new_runs(jobs_double, before)
    assert dbx.history == ["QUEUED", "PENDING", "RUNNING", "TERMINATING", "TERMINATED/SUCCESS"]
    request = dbx.request
    assert request["run_name"] == "flyte-test" and request["timeout_seconds"] == 600
    assert request["idempotency_token"].startswith("flyte-") and len(request["idempotency_token"]) <= 64
    (task,) = request["tasks"]
    entry = task["spark_python_task"]["python_file"]
    assert entry.startswith(f"s3://{BUCKET}/{workspace}/entrypoints/") and entry.endswith("/flyte-runtime.py")
    parameters = task["spark_python_task"]["parameters"]
    for flag in ("--task", "--inputs", "--outputs", "--raw-data-path", "--bundle"):
        assert parameters[parameters.index(flag) + 1].startswith(f"s3://{BUCKET}/{workspace}/")
    assert parameters[parameters.index("--action") + 1] == run.action.name
    assert task["new_cluster"]["spark_env_vars"] == {"DBX_STAGE": "test"}
    assert task["libraries"] == [{"pypi": {"package": "flyte-distributed[databricks]"}}]
    assert run.action.links["Databricks run"] == dbx.page(dbx.run_id)
    stored = s3.keys(f"{workspace}/")
    assert not [key for key in stored if "/runs/" in key], f"call data left after the run: {stored}"
    assert any("/bundles/" in key for key in stored), "the code bundle stays, shared by later runs"


def test_failure_brings_back_the_users_exception_with_the_cluster_traceback(workspace, jobs_double, monkeypatch):
    """On a Unity Catalog volume as storage this time: written here with the Files API, read there as files."""
    volume = f"/Volumes/main/flyte/data/{workspace}"
    monkeypatch.setenv("FLYTE_DATABRICKS_STORAGE", f"dbfs:{volume}")
    before = set(jobs_double.runs)
    with pytest.raises(ValueError, match="bad input 3") as info:
        flyte.with_runcontext(keep_raw_data=True).run(explode, 3)
    error = info.value
    assert isinstance(error, RuntimeUserError) and error.code == "ValueError"
    notes = "\n".join(getattr(error, "__notes__", []))
    assert "Remote traceback" in notes and "in check" in notes and "in explode" in notes
    (dbx,) = new_runs(jobs_double, before)
    assert dbx.history[-1] == "TERMINATED/FAILED" and dbx.page(dbx.run_id) in notes
    parameters = dbx.request["tasks"][0]["spark_python_task"]["parameters"]
    assert parameters[parameters.index("--inputs") + 1].startswith(f"{volume}/runs/")
    assert dbx.request["tasks"][0]["spark_python_task"]["python_file"].startswith(f"{volume}/entrypoints/")
    # The call data was kept (keep_raw_data): the error document is there, and no file carries the token.
    files = [os.path.join(folder, name) for folder, _, names in os.walk(os.path.join(jobs_double.root, volume[1:]))
             for name in names]
    assert any(path.endswith("/outputs/error.json") for path in files)
    assert any("/bundles/" in path for path in files) and any(path.endswith(".pkl") for path in files)
    for path in files:
        with open(path, "rb") as handle:
            assert TOKEN.encode() not in handle.read(), path
    assert any(body["path"].startswith(volume) for body in jobs_double.calls("fs/files"))


async def test_cancelling_the_call_cancels_the_run_and_kills_its_driver(workspace, jobs_double):
    before = set(jobs_double.runs)
    cancelled_at = 0.0
    async with anyio.create_task_group() as group:
        group.start_soon(lambda: flyte.run.aio(nap, 600))
        while not (runs := new_runs(jobs_double, before)) or runs[0].life_cycle != "RUNNING":
            await anyio.sleep(0.1)
        await anyio.sleep(1.0)  # the function is under way
        cancelled_at = time.monotonic()
        group.cancel_scope.cancel()
    (dbx,) = new_runs(jobs_double, before)
    assert dbx.terminal and dbx.history[-1] == "TERMINATED/CANCELED", dbx.history
    assert jobs_double.calls("runs/cancel") and jobs_double.calls("runs/cancel")[-1] == {"run_id": dbx.run_id}
    assert dbx.pid not in jobs_double.live_processes()
    assert time.monotonic() - cancelled_at < 60


def test_timeouts_here_and_on_databricks(workspace, jobs_double, dbfs):
    sleeper = dbfs("flyte-tests/sleep.py", """
        import time
        print("sleeping", flush=True)
        time.sleep(600)
        """)
    timed_env = flyte.TaskEnvironment(name="dbx_timeouts", plugin_config=user_program(sleeper))

    @timed_env.task
    def wait_for_it() -> int:
        return 1

    before = set(jobs_double.runs)
    with pytest.raises(TaskTimeoutError, match="exceeded its timeout of 3s"):
        flyte.run(wait_for_it.override(timeout=3))
    (here,) = new_runs(jobs_double, before)
    assert here.history[-1] == "TERMINATED/CANCELED" and {"run_id": here.run_id} in jobs_double.calls("runs/cancel")

    before = set(jobs_double.runs)
    limited = wait_for_it.override(plugin_config=user_program(sleeper, timeout_seconds=3))
    with pytest.raises(DatabricksRunTimeoutError) as info:
        flyte.run(limited)
    (there,) = new_runs(jobs_double, before)
    assert there.history[-1] == "TERMINATED/TIMEDOUT" and {"run_id": there.run_id} not in \
        jobs_double.calls("runs/cancel")
    error = info.value
    assert isinstance(error, TimeoutError) and error.code == "TIMEDOUT" and error.run_id == there.run_id
    assert "timeout_seconds (TIMEDOUT)" in str(error) and there.page(there.run_id) in str(error)


def test_ctrl_c_cancels_the_run(workspace, jobs_double, dbfs, tmp_path):
    sleeper = dbfs("flyte-tests/sleep-ctrl-c.py", "import time\ntime.sleep(600)\n")
    program = tmp_path / "interrupted.py"
    program.write_text(textwrap.dedent(f"""
        import flyte
        from flyteplugins.spark.task import DatabricksV2

        env = flyte.TaskEnvironment(name="dbx_ctrl_c", plugin_config=DatabricksV2({{
            "existing_cluster_id": "{DEFAULT_CLUSTER}", "spark_python_task": {{"python_file": "{sleeper}"}}}}))

        @env.task
        def wait() -> int:
            return 1

        flyte.run(wait)
        """))
    before = set(jobs_double.runs)
    child = subprocess.Popen([sys.executable, str(program)], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 120
        while not (runs := new_runs(jobs_double, before)) or runs[0].life_cycle != "RUNNING":
            assert child.poll() is None and time.monotonic() < deadline, child.communicate()
            time.sleep(0.1)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=90)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    (dbx,) = new_runs(jobs_double, before)
    assert child.returncode != 0 and "KeyboardInterrupt" in err, err[-2000:]
    assert dbx.history[-1] == "TERMINATED/CANCELED" and {"run_id": dbx.run_id} in jobs_double.calls("runs/cancel")
    assert TOKEN not in out + err


def test_retries_idempotency_and_no_token_anywhere(workspace, jobs_double, dbfs, caplog, capfd):
    dbfs("flyte-tests/hello.py", """
        import sys
        print("hello from the user's program", sys.argv[1:])
        """)
    caplog.set_level("DEBUG")
    jobs_double.fail("runs/submit", 429, retry_after=1)
    jobs_double.fail("runs/submit", 500, after_apply=True)  # the run starts, its answer is lost
    jobs_double.fail("runs/get", 503, times=2)
    before = set(jobs_double.runs)
    submits = len(jobs_double.calls("runs/submit"))
    run = flyte.run(report_logs)
    assert "hello from the user's program ['--who', 'tests']" in run.outputs()[0]
    (dbx,) = new_runs(jobs_double, before)
    tokens = {body["idempotency_token"] for body in jobs_double.calls("runs/submit")[submits:]}
    assert len(jobs_double.calls("runs/submit")) - submits == 3 and len(tokens) == 1
    assert dbx.request["tasks"][0]["spark_python_task"] == {"python_file": "dbfs:/flyte-tests/hello.py",
                                                            "parameters": ["--who", "tests"]}
    assert "trying again" in caplog.text

    wrong = report_logs.override(plugin_config=msgspec.structs.replace(
        own_env.plugin_config, databricks_token=flyte.Secret(key="other", as_env_var="DBX_OTHER_TOKEN")))
    os.environ["DBX_OTHER_TOKEN"] = "dapi" + "9" * 32
    try:
        with pytest.raises(DatabricksApiError, match="403") as info:
            flyte.run(wrong)
    finally:
        del os.environ["DBX_OTHER_TOKEN"]
    assert info.value.error_code == "PERMISSION_DENIED" and "9" * 32 not in str(info.value)
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err, repr(jobs_double.requests), str(info.value)):
        assert TOKEN not in text and "9" * 32 not in text


def test_run_states_are_named(workspace, jobs_double, dbfs):
    for life_cycle, fragment in (("INTERNAL_ERROR", "failed in the Databricks Jobs service"),
                                 ("SKIPPED", "was skipped by Databricks")):
        jobs_double.doom_next_run(life_cycle, f"{life_cycle} for the test")
        before = set(jobs_double.runs)
        with pytest.raises(DatabricksRunError) as info:
            flyte.run(report_logs)
        (dbx,) = new_runs(jobs_double, before)
        error = info.value
        assert error.code == life_cycle and error.kind == "system" and error.run_id == dbx.run_id
        assert fragment in str(error) and f"{life_cycle} for the test" in str(error)
        assert dbx.page(dbx.run_id) in str(error) and dbx.pid is None

    # FAILED without an error document (the user's own program): the run's error and trace from runs/get-output.
    failing = dbfs("flyte-tests/failing.py", """
        def load(path):
            raise FileNotFoundError(f"no such table: {path}")
        load("sales")
        """)
    failing_task = report_logs.override(plugin_config=user_program(failing))
    with pytest.raises(DatabricksRunError) as info:
        flyte.run(failing_task)
    error = info.value
    assert error.code == "FAILED" and error.kind == "user" and not isinstance(error, TimeoutError)
    assert error.error == "FileNotFoundError: no such table: sales"
    assert "Traceback (most recent call last):" in error.error_trace and "in load" in error.error_trace
    assert "Trace (from the cluster):" in str(error) and "no such table: sales" in str(error)

    # CANCELED by someone else (the run's page, another client): not this call's doing, so an error.
    sleeper = dbfs("flyte-tests/sleep-canceled.py", "import time\ntime.sleep(600)\n")
    before = set(jobs_double.runs)

    def cancel_it_elsewhere() -> None:
        deadline = time.monotonic() + 120
        while (not (runs := new_runs(jobs_double, before)) or runs[0].life_cycle != "RUNNING") \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        jobs_double.cancel(runs[0].run_id)

    import threading

    helper = threading.Thread(target=cancel_it_elsewhere)
    helper.start()
    try:
        with pytest.raises(DatabricksRunError) as info:
            flyte.run(report_logs.override(plugin_config=user_program(sleeper)))
    finally:
        helper.join()
    assert info.value.code == "CANCELED" and "cancelled on Databricks" in str(info.value)
    (dbx,) = new_runs(jobs_double, before)
    assert {"run_id": dbx.run_id} not in jobs_double.calls("runs/cancel")


def test_seed_example(workspace, jobs_double, dbfs, capfd):
    """flytekit's documented DatabricksV2 example (seed 000), in flyte 2 form; only the workspace is the double's."""
    dbfs("path/to/your_script.py", """
        import argparse
        parser = argparse.ArgumentParser()
        parser.add_argument("--input")
        parser.add_argument("--output")
        args = parser.parse_args()
        print(f"processed {args.input} into {args.output}")
        """)
    seed_env = flyte.TaskEnvironment(name="dbx_seed", plugin_config=DatabricksV2(
        databricks_instance="my-workspace.cloud.databricks.com",
        databricks_conf={
            "new_cluster": {
                "spark_version": "11.3.x-scala2.12",
                "node_type_id": "Standard_DS3_v2",
                "num_workers": 2,
            },
            "spark_python_task": {
                "python_file": "dbfs:/path/to/your_script.py",
                "parameters": ["--input", "dbfs:/input", "--output", "dbfs:/output"],
            },
        },
    ))

    @seed_env.task
    def databricks_job_example(input_data: str) -> str:
        # This Python function serves as a placeholder for the Flyte task.
        # The actual Spark job is defined by `databricks_conf` and executed on Databricks.
        print(f"Submitting Databricks job for input: {input_data}")
        return "Databricks job submitted"

    config = msgspec.structs.replace(seed_env.plugin_config, databricks_instance=jobs_double.url)
    before = set(jobs_double.runs)
    run = flyte.run(databricks_job_example.override(plugin_config=config), "s3://data/in")
    assert run.outputs()[0] == "Databricks job submitted"
    assert "Submitting Databricks job for input: s3://data/in" in capfd.readouterr().out
    (dbx,) = new_runs(jobs_double, before)
    assert dbx.history[-1] == "TERMINATED/SUCCESS" and "processed dbfs:/input into dbfs:/output" in dbx.logs
    assert dbx.request["tasks"][0]["spark_python_task"]["python_file"] == "dbfs:/path/to/your_script.py"
