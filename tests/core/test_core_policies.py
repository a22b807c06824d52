"""Retries, timeouts, cache, config validation, temp files and the import footprint."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta

import pytest

import flyte
from flyte.errors import TaskTimeoutError

env = flyte.TaskEnvironment(name="policies")
ATTEMPTS: dict[str, int] = {}


@env.task(retries=flyte.RetryStrategy(count=3, backoff=0.05, backoff_factor=2))
async def flaky(key: str, fail_times: int) -> int:
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] <= fail_times:
        raise ConnectionError(f"attempt {ATTEMPTS[key]}")
    return ATTEMPTS[key]


def test_retries_then_success_with_backoff():
    start = time.monotonic()
    run = flyte.run(flaky, key="a", fail_times=2)
    assert run.outputs()[0] == 3
    assert run.actions[0].attempts == 3
    assert time.monotonic() - start >= 0.05 + 0.1  # backoff 0.05 then 0.1


def test_retries_exhausted_raise_the_last_error():
    with pytest.raises(ConnectionError, match="attempt 4"):
        flyte.run(flaky, key="b", fail_times=10)
    assert ATTEMPTS["b"] == 4


def test_retries_zero_via_override():
    with pytest.raises(ConnectionError, match="attempt 1"):
        flyte.run(flaky.override(retries=0), key="c", fail_times=1)


@env.task(timeout=timedelta(seconds=0.5), retries=3)
async def too_slow() -> int:
    ATTEMPTS["slow"] = ATTEMPTS.get("slow", 0) + 1
    await asyncio.sleep(30)
    return 1


@env.task(timeout=flyte.Timeout(max_runtime=0.5))
def too_slow_sync() -> int:
    time.sleep(3)
    return 1


def test_timeout_cancels_the_body_and_is_not_retried():
    start = time.monotonic()
    with pytest.raises(TaskTimeoutError):
        flyte.run(too_slow)
    elapsed = time.monotonic() - start
    assert 0.5 <= elapsed < 5  # the body would sleep 30 s
    assert ATTEMPTS["slow"] == 1


def test_timeout_of_a_sync_task():
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        flyte.run(too_slow_sync)
    assert time.monotonic() - start < 2.5  # the body sleeps 3 s


BODY_RUNS: list[int] = []


@env.task(cache="auto")
async def cached_square(x: int) -> int:
    BODY_RUNS.append(x)
    return x * x


def test_cache_hit_skips_the_body(cache_dir):
    BODY_RUNS.clear()
    assert flyte.run(cached_square, x=4).outputs()[0] == 16
    run = flyte.run(cached_square, x=4)
    assert run.outputs()[0] == 16 and run.actions[0].cached
    assert BODY_RUNS == [4]
    assert flyte.run(cached_square, x=5).outputs()[0] == 25  # other inputs: miss
    assert BODY_RUNS == [4, 5]
    assert any(cache_dir.rglob("*"))


def test_overwrite_cache_recomputes(cache_dir):
    BODY_RUNS.clear()
    flyte.run(cached_square, x=6)
    flyte.with_runcontext(overwrite_cache=True).run(cached_square, x=6)
    assert BODY_RUNS == [6, 6]
    flyte.run(cached_square, x=6)
    assert BODY_RUNS == [6, 6]


def test_cache_disabled_by_override(cache_dir):
    BODY_RUNS.clear()
    uncached = cached_square.override(cache="disable")
    flyte.run(uncached, x=7)
    flyte.run(uncached, x=7)
    assert BODY_RUNS == [7, 7]


def test_cache_version_is_part_of_the_key(cache_dir):
    BODY_RUNS.clear()
    flyte.run(cached_square.override(cache=flyte.Cache("override", version_override="1")), x=2)
    flyte.run(cached_square.override(cache=flyte.Cache("override", version_override="2")), x=2)
    flyte.run(cached_square.override(cache=flyte.Cache("override", version_override="2")), x=2)
    assert BODY_RUNS == [2, 2]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: flyte.Resources(cpu="two"), "Resources.cpu"),
        (lambda: flyte.Resources(memory=("4Gi", "1Gi")), "Resources.memory: request"),
        (lambda: flyte.Resources(gpu=-1), "Resources.gpu"),
        (lambda: flyte.ReusePolicy(replicas=(3, 1)), "ReusePolicy.replicas"),
        (lambda: flyte.ReusePolicy(concurrency=0), "ReusePolicy.concurrency"),
        (lambda: flyte.RetryStrategy(count=-1), "RetryStrategy.count"),
        (lambda: flyte.Timeout(max_runtime=-5), "Timeout.max_runtime"),
        (lambda: flyte.Cache("sometimes"), "Cache.behavior: 'sometimes' is not one of auto, override, disable"),
        (lambda: flyte.PodTemplate(pod_spec="nope"), "PodTemplate.pod_spec"),
        (lambda: flyte.TaskEnvironment(name="bad name!"), "TaskEnvironment.name"),
        (lambda: flyte.TaskEnvironment(name="e", env_vars={"A": 1}), "TaskEnvironment.env_vars"),
        (lambda: flyte.TaskEnvironment(name="e").task(retries="x")(lambda: 1), "retries"),
        (lambda: flyte.with_runcontext(mode="cluster"), "mode"),
        (lambda: flyte.with_runcontext(colour=1), "unknown option"),
    ],
)
def test_bad_configuration_names_the_field(make, message):
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    assert message in str(info.value)


def test_resources_render_requests_and_limits():
    resources = flyte.Resources(cpu=("1", "2"), memory="4Gi", gpu=1)
    assert resources.requests() == {"cpu": "1", "memory": "4Gi", "nvidia.com/gpu": "1"}
    assert resources.limits() == {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}
    assert resources.cpu_request() == 1.0 and resources.memory_limit_bytes() == 4 * 2**30
    template = flyte.PodTemplate(primary_container_name="main", pod_spec={"containers": [{"name": "main"}]},
                                 labels={"a": "b"})
    assert template.pod_spec["containers"][0]["name"] == "main"


@env.task
async def writes_raw() -> str:
    path = os.path.join(flyte.ctx().raw_data_path, "data.bin")
    with open(path, "wb") as handle:
        handle.write(b"x" * 100)
    return path


def test_nothing_left_in_tmp_after_a_run():
    before = set(os.listdir(tempfile.gettempdir()))
    flyte.run(writes_raw)
    with pytest.raises(ConnectionError):
        flyte.run(flaky.override(retries=0), key="tmp", fail_times=1)
    after = set(os.listdir(tempfile.gettempdir()))
    assert {name for name in after - before if name.startswith("flyte-")} == set()


def test_import_flyte_is_light():
    code = (
        "import sys, flyte, flyte.extend\n"
        "heavy = {'pyspark', 'ray', 'torch', 'distributed', 'dask', 'kubernetes_asyncio', 'rich'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_timed_out_sync_body_does_not_hold_up_interpreter_exit(tmp_path):
    """The abandoned thread is blocked for good (as in an engine call that never returns after its engine stopped):
    the interpreter must still exit when the script ends."""
    script = tmp_path / "hang.py"
    script.write_text(
        "import threading, flyte\n"
        "env = flyte.TaskEnvironment(name='hang')\n"
        "@env.task(timeout=0.3)\n"
        "def blocked() -> int:\n"
        "    threading.Event().wait()\n"
        "    return 1\n"
        "try:\n"
        "    flyte.run(blocked)\n"
        "except TimeoutError:\n"
        "    print('timed out')\n"
    )
    start = time.monotonic()
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "timed out", result.stderr
    assert time.monotonic() - start < 20
