"""``spark-submit`` of a JVM application, as a child process that a timeout or cancellation kills with its group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections import deque

import anyio

from ._config import GenericSparkConf, resolve_master
from ._runtime import java_executable, spark_script

_STDERR_TAIL_LINES = 40


class SparkSubmitError(RuntimeError):
    """The application exited non-zero; ``returncode`` and ``stderr_tail`` say how."""

    def __init__(self, message: str, returncode: int, stderr_tail: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr_tail = stderr_tail


def submit_command(config: GenericSparkConf, app_name: str, scratch: str) -> list[str]:
    conf = {key: value.strip() for key, value in config.spark_conf.items()}
    command = [spark_script("spark-submit"), "--master", resolve_master(conf), "--class", config.main_class,
               "--name", conf.pop("spark.app.name", app_name)]
    conf.pop("spark.master", None)
    defaults = {
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": f"-Djava.io.tmpdir={scratch}",
    }
    if "spark.driver.extraJavaOptions" in conf:
        conf["spark.driver.extraJavaOptions"] = f"{defaults['spark.driver.extraJavaOptions']} " + \
            conf["spark.driver.extraJavaOptions"]
    for key, value in {**defaults, **conf}.items():
        command += ["--conf", f"{key}={value}"]
    for key, value in config.hadoop_conf.items():
        command += ["--conf", f"spark.hadoop.{key}={value}"]
    command.append(config.applications_path)
    return command


async def run_spark_submit(config: GenericSparkConf, app_name: str, scratch_root: str) -> str:
    """Run the application to completion; returns its stdout. Raises :class:`SparkSubmitError` on failure."""
    java_executable()
    scratch = tempfile.mkdtemp(prefix="spark-submit-", dir=scratch_root)
    command = submit_command(config, app_name, scratch)
    env = {**os.environ, "SPARK_LOCAL_DIRS": scratch, "PYSPARK_PYTHON": sys.executable}
    # Its own process group, so a timeout kills spark-submit and the JVM it launched together.
    process = await anyio.open_process(command, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    stdout_chunks: list[bytes] = []
    stderr_tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)

    async def drain_stdout() -> None:
        assert process.stdout is not None
        async for chunk in process.stdout:
            stdout_chunks.append(chunk)

    async def drain_stderr() -> None:
        assert process.stderr is not None
        pending = b""
        async for chunk in process.stderr:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            stderr_tail.extend(line.decode(errors="replace") for line in lines)
        if pending:
            stderr_tail.append(pending.decode(errors="replace"))

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(drain_stdout)
            group.start_soon(drain_stderr)
            returncode = await process.wait()
    finally:
        if process.returncode is None:
            with anyio.CancelScope(shield=True):
                _kill_group(process.pid)
                await process.wait()
        await process.aclose()
    if returncode != 0:
        tail = "\n".join(stderr_tail)
        raise SparkSubmitError(
            f"spark-submit of {config.main_class} ({config.applications_path}) exited with code {returncode}; "
            f"last lines of its stderr:\n{tail}", returncode, tail)
    return b"".join(stdout_chunks).decode(errors="replace")


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
