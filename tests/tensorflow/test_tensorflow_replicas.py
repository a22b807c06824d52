"""Embedded jobs without TensorFlow in them (so they are quick): the TF_CONFIG and ``flyte.ctx()`` of every replica,
overrides, failures naming the replica, and timeout, cancellation, Ctrl-C and the run policy's deadline stopping every
replica. Each test checks that no replica or job directory outlives it (``run_name`` fixture)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from _tf_testkit import alive, assert_no_leaks, job_processes, record, records, wait_for_records

import flyte
from _marker_kit import wait_for_started
from flyte.errors import TaskTimeoutError
from flyteplugins.tensorflow.task import PS, Chief, Evaluator, RunPolicy, TfJob, TfJobError, Worker

pytestmark = [pytest.mark.tensorflow]

full = TfJob(chief=Chief(), ps=PS(), worker=Worker(replicas=2), evaluator=Evaluator())
env = flyte.TaskEnvironment(name="tf_replicas", plugin_config=full)
driver_env = flyte.TaskEnvironment(name="tf_driver")


@env.task
async def report(directory: str, tag: str, replicas: int) -> dict:
    record(directory)
    data = flyte.ctx().data
    if data["tf_primary"]:
        # The primary's return ends the job and stops the parameter servers (and a PS job's workers) at once, as the
        # operator does: it waits for every replica's record first, or a slow one would be stopped before writing.
        await anyio.to_thread.run_sync(wait_for_records, directory, replicas)
    return {"type": data["tf_replica_type"], "index": data["tf_replica_index"], "tag": tag}


def _config(entry: dict) -> dict:
    return json.loads(entry["tf_config"])


def test_every_replica_gets_the_operators_tf_config_and_the_chief_value_is_the_tasks(run_name, tmp_path):
    out = flyte.with_runcontext(name=run_name).run(report, str(tmp_path), "a", 5).outputs()[0]
    assert out == {"type": "chief", "index": 0, "tag": "a"}
    seen = records(tmp_path)
    assert sorted(seen) == ["chief-0", "evaluator-0", "ps-0", "worker-0", "worker-1"]
    cluster = _config(seen["chief-0"])["cluster"]
    # The evaluator is not part of the training cluster; everyone else is, on its own loopback port.
    assert sorted(cluster) == ["chief", "ps", "worker"] and len(cluster["worker"]) == 2
    addresses = [a for group in cluster.values() for a in group]
    assert len(set(addresses)) == 4 and all(a.startswith("127.0.0.1:") for a in addresses)
    for name, entry in seen.items():
        config = _config(entry)
        assert config["cluster"] == cluster and config["environment"] == "cloud"
        assert config["task"] == {"type": entry["type"], "index": entry["index"]} and name == \
            f"{entry['type']}-{entry['index']}"
        assert entry["ctx_tf_config"] == config  # flyte.ctx().data["tf_config"] is TF_CONFIG, parsed
        assert entry["primary"] == (name == "chief-0")
    assert len({entry["pid"] for entry in seen.values()}) == 5


@driver_env.task
async def resized(directory: str) -> list:
    three = report.override(plugin_config=TfJob(worker=Worker(replicas=3)))
    one = report.override(plugin_config=TfJob())
    return [await three(os.path.join(directory, "three"), "b", 3), await one(os.path.join(directory, "one"), "c", 1)]


def test_override_resizes_the_workers_and_a_single_replica_trains_alone(run_name, tmp_path):
    (tmp_path / "three").mkdir()
    (tmp_path / "one").mkdir()
    three, one = flyte.with_runcontext(name=run_name).run(resized, str(tmp_path)).outputs()[0]
    assert three == {"type": "worker", "index": 0, "tag": "b"}  # no chief: worker 0's value
    seen = records(tmp_path / "three")
    assert sorted(seen) == ["worker-0", "worker-1", "worker-2"]
    for index in range(3):
        config = _config(seen[f"worker-{index}"])
        assert list(config["cluster"]) == ["worker"] and len(config["cluster"]["worker"]) == 3
        assert config["task"] == {"type": "worker", "index": index}
    assert [seen[f"worker-{i}"]["primary"] for i in range(3)] == [True, False, False]
    # One replica: no TF_CONFIG, as the operator gives none to a job that is not distributed.
    assert one == {"type": "worker", "index": 0, "tag": "c"}
    assert records(tmp_path / "one")["worker-0"]["tf_config"] is None


inner_env = flyte.TaskEnvironment(name="tf_inner", plugin_config=TfJob(worker=Worker(replicas=2)))
outer_env = flyte.TaskEnvironment(name="tf_outer", plugin_config=TfJob(chief=Chief()), depends_on=[inner_env])


@inner_env.task
async def inner_cluster() -> dict:
    return json.loads(os.environ["TF_CONFIG"])


@outer_env.task
async def outer_calls_inner() -> dict:
    own = json.loads(os.environ["TF_CONFIG"])
    if flyte.ctx().data["tf_replica_type"] != "chief":
        return {}
    return {"outer": own, "inner": await inner_cluster()}


def test_a_replica_calling_a_tensorflow_task_starts_a_job_of_its_own(run_name):
    out = flyte.with_runcontext(name=run_name).run(outer_calls_inner).outputs()[0]
    outer, inner = out["outer"], out["inner"]
    assert sorted(outer["cluster"]) == ["chief", "worker"] and outer["task"]["type"] == "chief"
    # The nested call's replicas got their own cluster, not the caller's TF_CONFIG.
    assert list(inner["cluster"]) == ["worker"] and len(inner["cluster"]["worker"]) == 2
    assert inner["task"] == {"type": "worker", "index": 0}
    assert not set(inner["cluster"]["worker"]) & set(outer["cluster"]["worker"] + outer["cluster"]["chief"])


failing_env = flyte.TaskEnvironment(name="tf_failing", plugin_config=TfJob(worker=Worker(replicas=2)))


class TrainingDiverged(Exception):
    def __init__(self, step: int) -> None:
        super().__init__(f"loss is NaN at step {step}")
        self.step = step


@failing_env.task
def worker1_raises(step: int) -> int:
    if flyte.ctx().data["tf_replica_index"] == 1:
        raise TrainingDiverged(step)
    time.sleep(60)  # stopped once worker 1 failed
    return 0


@failing_env.task
def worker1_killed(directory: str) -> int:
    record(directory)
    if flyte.ctx().data["tf_replica_index"] == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)
    return 0


@failing_env.task
def ps_exits(directory: str) -> int:
    record(directory)
    if flyte.ctx().data["tf_replica_type"] == "ps":
        os._exit(3)
    time.sleep(60)
    return 0


@driver_env.task
async def failures(directory: str) -> dict:
    out: dict = {}
    try:
        await worker1_raises(7)
    except TrainingDiverged as exc:
        out["raised"] = (exc.step, str(exc), "\n".join(getattr(exc, "__notes__", [])))
    os.makedirs(os.path.join(directory, "killed"))
    try:
        await worker1_killed(os.path.join(directory, "killed"))
    except TfJobError as exc:
        out["killed"] = str(exc)
    os.makedirs(os.path.join(directory, "ps"))
    try:
        await ps_exits.override(plugin_config=TfJob(chief=Chief(), ps=PS()))(os.path.join(directory, "ps"))
    except TfJobError as exc:
        out["ps"] = str(exc)
    return out


def test_failures_name_the_replica_keep_the_user_type_and_stop_the_others(run_name, tmp_path):
    started = time.monotonic()
    out = flyte.with_runcontext(name=run_name).run(failures, str(tmp_path)).outputs()[0]
    assert time.monotonic() - started < 50  # the replicas left sleeping were stopped, not waited for
    step, message, notes = out["raised"]
    assert step == 7 and message == "loss is NaN at step 7"
    assert "tf_failing.worker1_raises: replica worker 1 (pid" in notes and "failed with exit code 1" in notes
    assert "the other replicas were stopped" in notes and "raise TrainingDiverged(step)" in notes  # its traceback
    assert "replica worker 1 (pid" in out["killed"] and "was killed by SIGKILL (exit code -9)" in out["killed"]
    assert "OOM killer" in out["killed"]
    assert "replica ps 0 (pid" in out["ps"] and "failed with exit code 3" in out["ps"]
    for folder in ("killed", "ps"):
        assert not any(alive(entry["pid"]) for entry in records(tmp_path / folder).values())


sleepy_env = flyte.TaskEnvironment(name="tf_sleepy", plugin_config=TfJob(chief=Chief(), worker=Worker(replicas=2)))


@sleepy_env.task
def sleep_forever(directory: str) -> None:
    record(directory)
    time.sleep(600)


@pytest.mark.slow
def test_timeout_stops_every_replica(run_name, tmp_path):
    # The timeout also covers starting the three replica interpreters: it must strike while they all sleep.
    with pytest.raises(TaskTimeoutError, match="exceeded its timeout of 30s"):
        flyte.with_runcontext(name=run_name).run(sleep_forever.override(timeout=30), str(tmp_path))
    seen = records(tmp_path)
    assert len(seen) == 3  # all were running when the timeout struck
    assert not any(alive(entry["pid"]) for entry in seen.values())


@pytest.mark.slow
def test_run_policy_deadline_stops_the_job(run_name, tmp_path):
    bounded = sleep_forever.override(plugin_config=TfJob(worker=Worker(replicas=2),
                                                         run_policy=RunPolicy(active_deadline_seconds=4)))
    with pytest.raises(TfJobError, match="longer than RunPolicy.active_deadline_seconds=4"):
        flyte.with_runcontext(name=run_name).run(bounded, str(tmp_path))
    assert not any(alive(entry["pid"]) for entry in records(tmp_path).values())


def test_cancellation_stops_every_replica_and_the_loop_stays_free(run_name, tmp_path):
    ticks = 0

    async def main() -> None:
        nonlocal ticks
        async with anyio.create_task_group() as group:
            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await anyio.sleep(0.05)

            group.start_soon(ticker)
            group.start_soon(flyte.with_runcontext(name=run_name).run.aio, sleep_forever, str(tmp_path))
            await anyio.to_thread.run_sync(wait_for_records, tmp_path, 3)
            assert len(job_processes()) >= 3  # the leak check sees every replica
            before = ticks
            await anyio.sleep(1.0)
            assert ticks - before >= 5  # other work progressed while the replicas ran
            group.cancel_scope.cancel()

    anyio.run(main)
    assert not any(alive(entry["pid"]) for entry in records(tmp_path).values())


CTRL_C_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import flyte
    from flyteplugins.tensorflow.task import TfJob, Worker

    env = flyte.TaskEnvironment(name="ctrlc", plugin_config=TfJob(worker=Worker(replicas=2)))

    @env.task
    def train(marker_dir: str) -> None:
        index = flyte.ctx().data["tf_replica_index"]
        Path(marker_dir, f"started-{index}").write_text(str(os.getpid()))
        time.sleep(600)

    try:
        flyte.with_runcontext(name=sys.argv[2]).run(train, sys.argv[1])
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
""")


@contextlib.contextmanager
def _script_running(tmp_path: Path, run_name: str, **popen: object) -> Iterator[tuple[subprocess.Popen, list[int]]]:
    """The script above started as a user starts it, once both replicas run: (its process, their pids)."""
    script = tmp_path / "train_script.py"  # a plain script, no main guard: the replicas never import it
    script.write_text(CTRL_C_SCRIPT)
    markers = tmp_path / "markers"
    markers.mkdir()
    process = subprocess.Popen([sys.executable, str(script), str(markers), run_name], **popen)
    try:
        yield process, wait_for_started(markers, 2)
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.slow
def test_ctrl_c_stops_every_replica(run_name, tmp_path):
    with _script_running(tmp_path, run_name, stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "FLYTE_PROGRESS": "quiet"}) as (process, pids):
        process.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the foreground program
        out, _ = process.communicate(timeout=60)
    assert process.returncode == 130 and "interrupted" in out
    assert not any(alive(pid) for pid in pids)
    assert_no_leaks(run_name)


@pytest.mark.slow
def test_a_killed_caller_takes_its_replicas_along(run_name, tmp_path):
    with _script_running(tmp_path, run_name, stdout=subprocess.DEVNULL) as (process, pids):
        process.kill()  # no cleanup of its own can run: the replicas must die with it
        process.wait(timeout=30)
    end = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < end:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in pids)
    for leftover in Path(tempfile.gettempdir()).glob(f"flyte-{run_name}*"):
        shutil.rmtree(leftover)  # a SIGKILLed run cannot remove its own directories
