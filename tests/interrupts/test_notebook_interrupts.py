"""A Jupyter kernel interrupt during an engine job: the cell stops within seconds, the engine is stopped and its temp
dirs removed, and the next cell runs. A real kernel (ipykernel through jupyter_client), interrupted the way the
notebook's stop button does it (SIGINT to the kernel)."""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import time
import uuid

import pytest
from interrupt_harness import LEAK_MARK, processes_marked

jupyter_client = pytest.importorskip("jupyter_client")

SETUP = {
    "dask": '''
import time, flyte
from distributed import Client
from flyteplugins.dask.task import Dask, WorkerGroup
env = flyte.TaskEnvironment(name="nb_dask", plugin_config=Dask(workers=WorkerGroup(number_of_workers=2)))

def slow_inc(x):
    time.sleep(1)
    return x + 1

@env.task
async def job(n: int) -> int:
    client = Client()
    futures = client.map(slow_inc, range(n))
    print("JOB RUNNING", flush=True)
    return sum(client.gather(futures))
''',
    "spark": '''
import time, flyte
from flyteplugins.spark.task import Spark
env = flyte.TaskEnvironment(name="nb_spark", plugin_config=Spark(spark_conf={"spark.executor.instances": "1"}))

@env.task
async def job(n: int) -> int:
    spark = flyte.ctx().data["spark_session"]
    print("JOB RUNNING", flush=True)
    return spark.range(n).rdd.map(lambda x: (time.sleep(0.05), x)[1]).count()
''',
}
LONG = {"dask": 200, "spark": 4000}
SHORT = {"dask": 3, "spark": 3}
EXPECTED = {"dask": 6, "spark": 3}


class Kernel:
    def __init__(self, env: dict[str, str]) -> None:
        self.manager = jupyter_client.KernelManager(kernel_name="python3")
        self.manager.start_kernel(env=env)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str, *, interrupt_on: str | None = None, timeout: float = 180) -> tuple[dict, str, float]:
        """Execute ``code``; with ``interrupt_on``, interrupt the kernel once that text is printed. Returns the
        reply's content, the cell's output and the seconds from the interrupt to the reply."""
        msg_id = self.client.execute(code)
        output: list[str] = []
        interrupted_at = None
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self.client.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                message = None
            if message and message["parent_header"].get("msg_id") == msg_id:
                content = message["content"]
                if message["msg_type"] == "stream":
                    output.append(content["text"])
                elif message["msg_type"] in ("execute_result", "display_data"):
                    output.append(content["data"].get("text/plain", ""))
                elif message["msg_type"] == "error":
                    output.append(f"{content['ename']}: {content['evalue']}")
                elif message["msg_type"] == "status" and content["execution_state"] == "idle":
                    break
            if interrupt_on and interrupted_at is None and interrupt_on in "".join(output):
                time.sleep(1.0)
                interrupted_at = time.monotonic()
                self.manager.interrupt_kernel()
            assert time.monotonic() < deadline, f"cell did not finish: {''.join(output)}"
        reply = self._reply_to(msg_id)
        seconds = time.monotonic() - interrupted_at if interrupted_at else 0.0
        return reply, "".join(output), seconds

    def _reply_to(self, msg_id: str) -> dict:
        """The execute_reply of ``msg_id``. Replies to other requests are skipped: ``wait_for_ready`` sends a
        kernel_info request every second until one is answered, so a kernel slow to start (a loaded machine) leaves
        extra kernel_info replies queued on the shell channel, which would otherwise be read as this cell's reply."""
        deadline = time.monotonic() + 30
        while True:
            message = self.client.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if message["parent_header"].get("msg_id") == msg_id:
                return message["content"]

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=False)


@pytest.fixture
def kernel():
    mark = uuid.uuid4().hex
    tmp = tempfile.mkdtemp(prefix="fk-", dir="/tmp")
    env = dict(os.environ, TMPDIR=tmp, FLYTE_PROGRESS="plain", **{LEAK_MARK: mark})
    started = Kernel(env)
    try:
        yield started, mark, tmp
    finally:
        started.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _engine_processes(mark: str, kernel_pid: int) -> list[str]:
    """Processes the engines left, beside the kernel and the resource tracker multiprocessing keeps for it."""
    deadline = time.monotonic() + 5
    while True:
        left = [line for line in processes_marked(mark)
                if int(line.split()[0]) != kernel_pid and "multiprocessing.resource_tracker" not in line]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize("engine", [pytest.param("dask", marks=pytest.mark.dask),
                                    pytest.param("spark", marks=pytest.mark.spark)])
def test_kernel_interrupt_stops_the_job_and_the_next_cell_runs(kernel, engine):
    kernel, mark, tmp = kernel
    reply, output, _ = kernel.run(SETUP[engine])
    assert reply["status"] == "ok", output
    kernel_pid = kernel.manager.provisioner.process.pid

    # Top-level await, as notebooks run tasks.
    reply, output, seconds = kernel.run(f"run = await flyte.run.aio(job, n={LONG[engine]})", interrupt_on="JOB RUNNING")
    assert reply["status"] == "error" and reply["ename"] in ("CancelledError", "KeyboardInterrupt"), output
    assert seconds <= 10, f"the cell took {seconds:.1f}s to stop:\n{output}"
    assert "aborted" in output and "succeeded" not in output, output
    assert not _engine_processes(mark, kernel_pid)
    assert os.listdir(tmp) == [], os.listdir(tmp)

    # The sync call inside a cell (flyte.run while the kernel's loop runs).
    reply, output, seconds = kernel.run(f"flyte.run(job, n={LONG[engine]})", interrupt_on="JOB RUNNING")
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", output
    assert seconds <= 10, f"the cell took {seconds:.1f}s to stop:\n{output}"
    assert not _engine_processes(mark, kernel_pid)
    assert os.listdir(tmp) == [], os.listdir(tmp)

    reply, output, _ = kernel.run(f"print((await flyte.run.aio(job, n={SHORT[engine]})).outputs()[0])")
    assert reply["status"] == "ok", output
    assert str(EXPECTED[engine]) in output.splitlines(), output
