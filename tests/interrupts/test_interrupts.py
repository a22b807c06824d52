"""Ctrl-C and SIGTERM during engine tasks, as users hit them: a real script in its own process group, interrupted
while its engine starts and while its job runs, by a signal to the whole group (a terminal's Ctrl-C) or to the
process only. Each must exit within 10 s, report the task interrupted (never succeeded), and leave no process and
no temp entry behind (see ``interrupt_harness``)."""

from __future__ import annotations

import os
import signal

import pytest
from interrupt_harness import interrupt_script

SCRIPTS = os.path.join(os.path.dirname(__file__), "scripts")
EXIT_BOUND_S = 10.0

ENGINES = [
    pytest.param("spark", 2.0, marks=[pytest.mark.spark], id="spark"),
    pytest.param("ray", 1.5, marks=[pytest.mark.ray], id="ray"),
    pytest.param("dask", 0.3, marks=[pytest.mark.dask], id="dask"),
    pytest.param("torch", 0.5, marks=[pytest.mark.torch], id="torch"),
]


# Python ends on an unhandled KeyboardInterrupt by re-raising SIGINT on itself, unless sys.excepthook was replaced:
# importing ray installs its own (Python then exits with 1) until ray.shutdown() puts the default back.
_SIGINT_EXITS = {"spark": {-signal.SIGINT}, "ray": {-signal.SIGINT, 1}, "dask": {-signal.SIGINT},
                 "torch": {-signal.SIGINT}}


def _check(outcome, engine: str, signame: str, expected_codes: set[int]) -> None:
    report = (f"{engine}: exit {outcome.returncode} {outcome.seconds_to_exit:.1f}s after {signame}\n"
              f"{outcome.output[-4000:]}")
    assert outcome.returncode in expected_codes, report
    assert outcome.seconds_to_exit <= EXIT_BOUND_S, report
    assert f"aborted (interrupted by {signame})" in outcome.output, report
    assert "succeeded" not in outcome.output, report
    assert not outcome.leftover_processes, f"processes left: {outcome.leftover_processes}\n{report}"
    assert not outcome.leftover_files, f"temp entries left: {outcome.leftover_files}\n{report}"


@pytest.mark.slow
@pytest.mark.parametrize("to_group", [True, False], ids=["group", "process"])
@pytest.mark.parametrize("phase", ["starting", "running"])
@pytest.mark.parametrize(("engine", "start_delay"), ENGINES)
def test_ctrl_c_stops_the_engine_task_and_leaves_nothing(engine, start_delay, phase, to_group):
    script = os.path.join(SCRIPTS, f"{engine}_job.py")
    if phase == "starting":  # the engine is still coming up: the run has started, the job has not
        outcome = interrupt_script(script, wait_for="[flyte] run", delay=start_delay, to_group=to_group)
    else:
        outcome = interrupt_script(script, wait_for="JOB RUNNING", delay=1.0, to_group=to_group)
    _check(outcome, engine, "SIGINT", _SIGINT_EXITS[engine])
    assert "KeyboardInterrupt" in outcome.output
    if phase == "running":
        assert "JOB RUNNING" in outcome.output


@pytest.mark.slow
@pytest.mark.parametrize(("engine", "start_delay"), ENGINES)
def test_sigterm_stops_the_engine_task_like_ctrl_c(engine, start_delay):
    script = os.path.join(SCRIPTS, f"{engine}_job.py")
    outcome = interrupt_script(script, wait_for="JOB RUNNING", delay=1.0, to_group=False, sig=signal.SIGTERM)
    _check(outcome, engine, "SIGTERM", {128 + signal.SIGTERM})


@pytest.mark.slow
@pytest.mark.parametrize(("engine", "start_delay"), ENGINES)
def test_a_second_ctrl_c_cuts_cleanup_short_but_still_removes_everything(engine, start_delay):
    script = os.path.join(SCRIPTS, f"{engine}_job.py")
    outcome = interrupt_script(script, wait_for="JOB RUNNING", delay=1.0, again_after=0.3)
    report = f"{engine}: exit {outcome.returncode} {outcome.seconds_to_exit:.1f}s\n{outcome.output[-4000:]}"
    assert outcome.returncode in _SIGINT_EXITS[engine] | {1}, report
    assert outcome.seconds_to_exit <= EXIT_BOUND_S, report
    assert "KeyboardInterrupt" in outcome.output and "succeeded" not in outcome.output, report
    assert not outcome.leftover_processes, f"processes left: {outcome.leftover_processes}\n{report}"
    assert not outcome.leftover_files, f"temp entries left: {outcome.leftover_files}\n{report}"
