"""``timeout`` on engine tasks written as users write them (``async def`` bodies that block in engine calls), for a
cold engine start and for a running job: the task fails with ``TaskTimeoutError`` at most
``INTERRUPT_GRACE_S`` (1.5 s) plus a small margin after its limit, its engine work is cancelled, and nothing is
left behind. Each runs as a real script, as users run them."""

from __future__ import annotations

import os
import re

import pytest
from interrupt_harness import run_script

from flyte.extend import INTERRUPT_GRACE_S

SCRIPTS = os.path.join(os.path.dirname(__file__), "scripts")
MARGIN_S = 1.0  # the plugin's release and scheduling on a busy 2-core machine

# A limit well inside each engine's cold start (Spark ~9 s, Ray ~5 s, Dask ~1.5 s, torch workers ~3 s here), and one
# long enough for the start so that the job itself is cut.
ENGINES = [
    pytest.param("spark", 1.0, 25.0, marks=[pytest.mark.spark], id="spark"),
    pytest.param("ray", 1.0, 15.0, marks=[pytest.mark.ray], id="ray"),
    pytest.param("dask", 0.3, 10.0, marks=[pytest.mark.dask], id="dask"),
    pytest.param("torch", 1.0, 15.0, marks=[pytest.mark.torch], id="torch"),
]


def _task_seconds(output: str) -> float:
    found = re.search(r"\[flyte\] a1 \S+ timed_out in ([0-9.]+)s", output)
    assert found, output
    return float(found.group(1))


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["cold_start", "job"])
@pytest.mark.parametrize(("engine", "cold_limit", "job_limit"), ENGINES)
def test_timeout_cuts_the_engine_task_on_time(engine, cold_limit, job_limit, phase):
    limit = cold_limit if phase == "cold_start" else job_limit
    outcome = run_script(os.path.join(SCRIPTS, f"{engine}_job.py"), {"JOB_TIMEOUT": str(limit)})
    report = outcome.output[-4000:]
    # MaxRuntimeExceededError: flyte-sdk's TaskTimeoutError for a per-attempt limit.
    assert outcome.returncode == 1 and "MaxRuntimeExceededError" in outcome.output, report
    assert "incubator modules" not in outcome.output, report  # a start we cut short is not a failed start
    seconds = _task_seconds(outcome.output)
    assert limit <= seconds <= limit + INTERRUPT_GRACE_S + MARGIN_S, report
    if phase == "job":
        assert "JOB RUNNING" in outcome.output, report
    else:
        assert "JOB RUNNING" not in outcome.output, report
    assert not outcome.leftover_processes, f"processes left: {outcome.leftover_processes}\n{report}"
    assert not outcome.leftover_files, f"temp entries left: {outcome.leftover_files}\n{report}"


@pytest.mark.slow
@pytest.mark.dask
def test_the_callers_loop_stays_free_while_an_engine_task_blocks():
    outcome = run_script(os.path.join(SCRIPTS, "free_loop.py"), {})
    assert outcome.returncode == 0, outcome.output[-4000:]
    found = re.search(r"TICKS (\d+) CANCELLED_AFTER ([0-9.]+)", outcome.output)
    assert found, outcome.output[-4000:]
    ticks, cancelled_after = int(found.group(1)), float(found.group(2))
    assert ticks >= 20, f"a plain sibling ticked {ticks} times in 3 s beside a blocking engine task"
    # The sibling fails at 1 s; the task group cancels the engine task, which ends within the grace, not in 60 s.
    assert cancelled_after <= 1.0 + INTERRUPT_GRACE_S + MARGIN_S, outcome.output[-4000:]
    assert not outcome.leftover_processes and not outcome.leftover_files
