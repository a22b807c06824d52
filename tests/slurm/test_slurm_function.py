"""Function tasks on the real cluster: the seed's example (a custom script template around ``{task.fn}``), the
user's exception type kept, sbatch options honoured."""

from __future__ import annotations

import sys

import pytest

import flyte
from flyteplugins.slurm.function.task import SlurmFunctionConfig

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

TEMPLATE = """#!/bin/bash
#SBATCH --job-name=my_flyte_job
#SBATCH --output=flyte_job_%j.out
#SBATCH --error=flyte_job_%j.err

echo "Starting Flyte task on Slurm as job $SLURM_JOB_ID named $SLURM_JOB_NAME"
{task.fn}
echo "Flyte task finished"
"""


def function_config(cluster, **overrides):
    values = {"ssh_config": cluster.ssh_config(), "sbatch_config": {"time": "0-00:10", "nodes": "1",
                                                                    "ntasks-per-node": "1"},
              "python": sys.executable, "remote_dir": cluster.remote_dir}
    values.update(overrides)
    return SlurmFunctionConfig(**values)


def slurm_python_task(input_val: int) -> str:
    import time

    time.sleep(input_val)
    return f"Processed {input_val} on Slurm"


def test_seed_example_with_script_template(cluster, capfd):
    env = flyte.TaskEnvironment(name="slurm_seed", plugin_config=function_config(cluster, script=TEMPLATE))
    task = env.task(slurm_python_task)
    run = flyte.with_runcontext(progress="plain").run(task, 1)
    assert run.outputs()[0] == "Processed 1 on Slurm"
    job_id = run.action.links["Slurm job"].split()[0]
    err = capfd.readouterr().err
    assert f"Starting Flyte task on Slurm as job {job_id} named my_flyte_job" in err
    assert "Flyte task finished" in err


class InputRejected(ValueError):
    def __init__(self, message: str, value: int) -> None:
        super().__init__(message)
        self.value = value


def reject(value: int) -> int:
    raise InputRejected(f"value {value} is not allowed", value)


def describe_job() -> dict:
    import os

    return {key: os.environ.get(key, "") for key in ("SLURM_JOB_ID", "SLURM_JOB_NAME", "SLURM_CPUS_ON_NODE")}


def exit_hard(code: int) -> None:
    import os
    import sys

    print("about to leave without a word", file=sys.stderr, flush=True)
    os._exit(code)


def test_default_script_runs_the_function_and_keeps_the_users_exception(cluster):
    env = flyte.TaskEnvironment(name="slurm_plain", plugin_config=function_config(cluster))
    task = env.task(reject)
    with pytest.raises(InputRejected, match="value 7 is not allowed") as caught:
        flyte.run(task, 7)
    assert caught.value.value == 7  # its attributes too
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "Remote traceback" in notes and "raised in Slurm job" in notes
    assert isinstance(caught.value, flyte.errors.RuntimeUserError)


def test_sbatch_options_reach_the_job(cluster):
    config = function_config(cluster, sbatch_config={"job-name": "named-by-config", "cpus-per-task": 2,
                                                     "time": "5"})
    task = flyte.TaskEnvironment(name="slurm_opts", plugin_config=config).task(describe_job)
    seen = flyte.run(task).outputs()[0]
    assert seen["SLURM_JOB_NAME"] == "named-by-config"
    assert seen["SLURM_JOB_ID"].isdigit()


def test_a_job_that_dies_without_a_word_reports_exit_code_and_stderr(cluster):
    from flyteplugins.slurm.script.task import SlurmJobError

    task = flyte.TaskEnvironment(name="slurm_exit", plugin_config=function_config(cluster)).task(exit_hard)
    with pytest.raises(SlurmJobError) as caught:
        flyte.run(task, 3)
    error = caught.value
    assert (error.state, error.exit_code) == ("FAILED", 3)
    assert "about to leave without a word" in error.stderr_tail
    assert "ended FAILED with exit code 3" in str(error) and "about to leave without a word" in str(error)


def test_a_python_without_the_sdk_is_reported_before_any_job(cluster, tmp_path):
    from flyteplugins.slurm.function.task import SlurmPythonError

    bare = tmp_path / "python-without-sdk"
    bare.write_text("#!/bin/sh\nexec /usr/bin/env -i python3 -I -S \"$@\"\n")
    bare.chmod(0o755)
    for python, expected in ((str(bare), "cannot import this SDK"), ("/nonexistent/python3", "no Python")):
        task = flyte.TaskEnvironment(name="slurm_nosdk", plugin_config=function_config(cluster, python=python)) \
            .task(describe_job)
        with pytest.raises(SlurmPythonError, match=expected) as caught:
            flyte.run(task)
        assert "SlurmFunctionConfig(python=...)" in str(caught.value)


def test_remote_dir_is_kept_only_when_asked(cluster):
    import shutil
    from pathlib import Path

    task = flyte.TaskEnvironment(name="slurm_keep", plugin_config=function_config(
        cluster, keep_remote_dir=True)).task(describe_job)
    run = flyte.run(task)
    kept = [path for path in Path(cluster.remote_dir).iterdir() if path.name.startswith(run.name)]
    try:
        assert len(kept) == 1 and oct(kept[0].stat().st_mode)[-3:] == "700"  # the run's, private
        attempt = next(kept[0].glob("a1-1-*"))
        names = {path.name for path in attempt.iterdir()}
        assert {"job.sh", "task.pkl", "inputs.msgpack", "outputs"} <= names
        assert (attempt / "outputs" / "outputs.msgpack").exists()
        assert any(name.startswith("slurm-") and name.endswith(".out") for name in names)  # the job's output
        assert list(kept[0].glob("bundle-*.zip"))
    finally:
        for path in kept:
            shutil.rmtree(path)
