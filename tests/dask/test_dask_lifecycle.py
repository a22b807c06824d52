"""Lifecycle of the embedded cluster: after success, failure, timeout, cancellation and interpreter exit, no worker
process, scratch directory or listening scheduler port remains, and the next run starts cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import anyio
import dask
import pytest
from _dask_testkit import assert_no_leaks, port_open, wait_until
from distributed import get_client

import flyte
from flyte.errors import TaskTimeoutError
from flyteplugins.dask.task import Dask, WorkerGroup

pytestmark = [pytest.mark.dask, pytest.mark.slow]

SMALL = Dask(workers=WorkerGroup(number_of_workers=1), dashboard=False)
env = flyte.TaskEnvironment(name="dask_lifecycle", plugin_config=SMALL)
driver_env = flyte.TaskEnvironment(name="dask_lifecycle_driver")

SEEN: list[dict] = []  # what each call saw; the tasks run in this process


def _record() -> dict:
    engine = flyte.ctx().data["dask_engine"]
    seen = {"address": engine.scheduler_address, "pids": list(engine.worker_pids), "dir": engine.local_directory,
            "config_address": dask.config.get("scheduler-address", None)}
    SEEN.append(seen)
    return seen


@env.task
async def succeed() -> int:
    _record()
    return get_client().submit(sum, [1, 2, 3]).result()


@env.task(retries=1)
async def fail_twice() -> int:
    _record()
    raise ValueError("boom from the task body")


# The timeout also covers the cluster's cold start (the template's pre), which takes seconds on a loaded machine: it
# must strike in the body, with the worker busy.
@env.task(timeout=20)
def block_on_a_worker() -> None:
    _record()
    get_client().submit(time.sleep, 120, pure=False).result()


@env.task
async def wait_forever() -> None:
    _record()
    await anyio.sleep(3600)


@driver_env.task
async def two_at_once() -> list[int]:
    import asyncio

    return list(await asyncio.gather(succeed(), succeed()))


@pytest.fixture(autouse=True)
def fresh_record():
    SEEN.clear()
    yield
    SEEN.clear()


def _assert_clean(run_name: str) -> None:
    assert SEEN, "the task body never ran"
    assert_no_leaks(run_name, addresses=tuple({seen["address"] for seen in SEEN}))
    assert not any(os.path.exists(seen["dir"]) for seen in SEEN)
    assert dask.config.get("scheduler-address", None) is None, "the task's scheduler address outlived the run"


def test_success_then_a_new_run_starts_cleanly():
    assert flyte.with_runcontext(name="dasklcok1").run(succeed).outputs()[0] == 6
    _assert_clean("dasklcok1")
    first = SEEN[0]
    assert first["config_address"] == first["address"]
    assert flyte.with_runcontext(name="dasklcok2").run(succeed).outputs()[0] == 6
    _assert_clean("dasklcok2")
    assert SEEN[1]["pids"] != first["pids"]


def test_concurrent_calls_share_one_cluster():
    assert flyte.with_runcontext(name="dasklcpair").run(two_at_once).outputs()[0] == [6, 6]
    assert len(SEEN) == 2 and SEEN[0]["address"] == SEEN[1]["address"]
    _assert_clean("dasklcpair")


def test_failure_is_retried_on_the_same_cluster_and_cleaned_up():
    with pytest.raises(ValueError, match="boom from the task body"):
        flyte.with_runcontext(name="dasklcfail").run(fail_twice)
    assert len(SEEN) == 2 and SEEN[0]["address"] == SEEN[1]["address"]
    _assert_clean("dasklcfail")


def test_timeout_while_a_worker_is_busy():
    started = time.monotonic()
    with pytest.raises(TaskTimeoutError):
        flyte.with_runcontext(name="dasklctimeout").run(block_on_a_worker)
    assert time.monotonic() - started < 60
    _assert_clean("dasklctimeout")


def test_cancellation():
    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(flyte.with_runcontext(name="dasklccancel").run.aio, wait_forever)
            with anyio.fail_after(120):
                while not SEEN:
                    await anyio.sleep(0.05)
            group.cancel_scope.cancel()

    anyio.run(main)
    _assert_clean("dasklccancel")


EXIT_SCRIPT = textwrap.dedent("""
    import json, os, sys, threading, time

    import anyio
    import flyte
    from flyteplugins.dask.task import Dask, WorkerGroup

    env = flyte.TaskEnvironment(name="dask_exit", plugin_config=Dask(workers=WorkerGroup(number_of_workers=1),
                                                                     dashboard=False))

    @env.task
    async def hold(path: str) -> None:
        engine = flyte.ctx().data["dask_engine"]
        with open(path + ".tmp", "w") as handle:
            json.dump({"address": engine.scheduler_address, "pids": list(engine.worker_pids),
                       "dir": engine.local_directory}, handle)
        os.replace(path + ".tmp", path)
        await anyio.sleep(3600)

    if __name__ == "__main__":
        out = sys.argv[1]
        threading.Thread(target=flyte.run, args=(hold, out), daemon=True).start()
        while not os.path.exists(out):
            time.sleep(0.05)
        # The run is still going when the interpreter exits: only the exit hooks can take the cluster down.
""")


def test_interpreter_exit_stops_a_cluster_still_in_use(tmp_path):
    script, out = tmp_path / "hold.py", tmp_path / "engine.json"
    script.write_text(EXIT_SCRIPT)
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    done = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=180,
                          cwd=tmp_path, env={**os.environ, "TMPDIR": str(private_tmp)})
    assert done.returncode == 0, done.stderr[-3000:]
    engine = json.loads(out.read_text())
    assert wait_until(lambda: not port_open(engine["address"]), 10), "the scheduler outlived the interpreter"
    assert not os.path.exists(engine["dir"])
    assert_no_leaks()
    # The run never closed (its thread died with the interpreter): its own dirs go at exit too.
    assert not [entry.name for entry in private_tmp.iterdir() if not entry.name.startswith("pymp-")]
