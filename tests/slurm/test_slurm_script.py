"""Batch script tasks on the real cluster: the seed's two examples (an existing script with arguments, an inline
script with input interpolation and a File output), Dir outputs and File inputs, and failures."""

from __future__ import annotations

from pathlib import Path

import pytest

import flyte
from flyte.io import Dir, File
from flyteplugins.slurm.script.task import (
    OutputLocation,
    SlurmConfig,
    SlurmJobError,
    SlurmScriptConfig,
    SlurmScriptNotFoundError,
    SlurmShellTask,
    SlurmTask,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def test_seed_existing_batch_script_with_args(cluster):
    home = Path(cluster.root, "home")
    result = home / "training-result.txt"
    script = home / "my_training_script.sh"
    script.write_text(f"#!/bin/bash\n#SBATCH --output={home}/training_%j.out\n"
                      f'echo "args: $*" > {result}\necho "job $SLURM_JOB_ID trained"\n')
    slurm_script_task = SlurmTask(
        name="my_pre_existing_slurm_script",
        task_config=SlurmScriptConfig(
            ssh_config=cluster.ssh_config(),
            batch_script_path=str(script),
            sbatch_config={"time": "0-01:00"},
            batch_script_args=["--data", "/data/input.csv"],
            remote_dir=cluster.remote_dir,
        ),
    )
    run = flyte.run(slurm_script_task)
    assert run.outputs()[0] is None
    assert result.read_text() == "args: --data /data/input.csv\n"
    job_id = run.action.links["Slurm job"].split()[0]
    assert (home / f"training_{job_id}.out").read_text() == f"job {job_id} trained\n"  # where the script said


def test_existing_batch_script_that_is_missing(cluster):
    task = SlurmTask(name="missing_script", task_config=SlurmScriptConfig(
        ssh_config=cluster.ssh_config(), batch_script_path="/nonexistent/train.sh", remote_dir=cluster.remote_dir))
    with pytest.raises(SlurmScriptNotFoundError, match="/nonexistent/train.sh does not exist on the Slurm cluster"):
        flyte.run(task)


def test_seed_inline_script_with_input_and_file_output(cluster, capfd):
    location = str(Path(cluster.root, "home", "slurm_output_{inputs.my_input}.txt"))
    slurm_shell_task = SlurmShellTask(
        name="my_inline_slurm_script",
        task_config=SlurmConfig(ssh_config=cluster.ssh_config(), sbatch_config={"time": "0-00:05"},
                                remote_dir=cluster.remote_dir),
        script="""#!/bin/bash
#SBATCH --job-name=inline_script
#SBATCH --output=output_%j.txt

echo "Input value: {inputs.my_input} in job $SLURM_JOB_NAME"
echo "Hello from Slurm!" > {outputs.output_file}
""",
        inputs={"my_input": int},
        output_locs=[OutputLocation(var="output_file", var_type=File, location=location)],
    )
    run = flyte.with_runcontext(progress="plain").run(slurm_shell_task, my_input=3)
    output = run.outputs()[0]
    assert isinstance(output, File)
    with output.open_sync("rb") as handle:  # fetched from the cluster
        assert handle.read() == b"Hello from Slurm!\n"
    assert Path(output.path) != Path(location.replace("{inputs.my_input}", "3"))
    assert "Input value: 3 in job inline_script" in capfd.readouterr().err  # the job's output, as it ran


def test_inline_script_with_file_input_and_several_outputs(cluster, tmp_path):
    source = tmp_path / "numbers.txt"
    source.write_text("1\n2\n3\n")
    task = SlurmShellTask(
        name="summarize",
        task_config=SlurmConfig(ssh_config=cluster.ssh_config(), remote_dir=cluster.remote_dir),
        script="""#!/bin/bash
set -euo pipefail
mkdir -p {outputs.report}
awk '{ s += $1 } END { print s }' {inputs.numbers} > {outputs.total}
for i in {1..3}; do echo "part $i of {inputs.label}" > {outputs.report}/part-$i.txt; done
""",
        inputs={"numbers": File, "label": str},
        output_locs=[OutputLocation(var="total", var_type=File, location="total.txt"),
                     OutputLocation(var="report", var_type=Dir, location="report-{inputs.label}")],
    )
    total, report = flyte.run(task, numbers=File.from_local_sync(source), label="weekly").outputs()
    with total.open_sync("rb") as handle:
        assert handle.read() == b"6\n"
    files = sorted(Path(report.path).iterdir())
    assert [f.name for f in files] == ["part-1.txt", "part-2.txt", "part-3.txt"]
    assert files[0].read_text() == "part 1 of weekly\n"


def test_failing_script_reports_exit_code_and_stderr_tail(cluster):
    task = SlurmShellTask(
        name="failing",
        task_config=SlurmConfig(ssh_config=cluster.ssh_config(), remote_dir=cluster.remote_dir,
                                sbatch_config={"error": "failing_%j.err"}),
        script="#!/bin/bash\necho 'working on it'\necho 'disk quota exceeded' >&2\nexit 3\n",
    )
    with pytest.raises(SlurmJobError) as caught:
        flyte.run(task)
    error = caught.value
    assert (error.state, error.exit_code, error.code) == ("FAILED", 3, "FAILED")
    assert error.stderr_tail == "disk quota exceeded"
    assert "ended FAILED with exit code 3" in str(error) and "disk quota exceeded" in str(error)


def test_output_the_script_did_not_write(cluster):
    task = SlurmShellTask(
        name="forgetful",
        task_config=SlurmConfig(ssh_config=cluster.ssh_config(), remote_dir=cluster.remote_dir),
        script="#!/bin/bash\ntrue\n",
        output_locs=[OutputLocation(var="result", var_type=File, location="result.txt")],
    )
    with pytest.raises(Exception, match="output 'result': the job completed but wrote nothing at .*result.txt"):
        flyte.run(task)
