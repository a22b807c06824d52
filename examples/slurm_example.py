"""Slurm: a Python function, an inline shell script and an existing batch script, each run as a job on a cluster
reached over SSH.

Run: ``FLYTE_SLURM_HOST=login.cluster.example FLYTE_SLURM_USER=me python examples/slurm_example.py``. Optional:
``FLYTE_SLURM_PORT``, ``FLYTE_SLURM_KEY`` (a private key file; default: ~/.ssh/id_* and ssh-agent),
``FLYTE_SLURM_KNOWN_HOSTS`` (default ~/.ssh/known_hosts: the host key is always verified),
``FLYTE_SLURM_PYTHON`` (the cluster's Python, which must have this SDK installed; default ``python3``),
``FLYTE_SLURM_REMOTE_DIR`` (where run directories go on the cluster; default ``~/.flyte-slurm``) and
``FLYTE_SLURM_BATCH_SCRIPT`` (a batch script on the cluster, for the third example).
"""

from __future__ import annotations

import os

import flyte
from flyte.io import File
from flyteplugins.slurm.function.task import SlurmFunctionConfig
from flyteplugins.slurm.script.task import OutputLocation, SlurmConfig, SlurmScriptConfig, SlurmShellTask, SlurmTask

ssh_config = {"host": os.environ.get("FLYTE_SLURM_HOST", "slurm-cluster.example.com"),
              "port": int(os.environ.get("FLYTE_SLURM_PORT", "22")),
              "username": os.environ.get("FLYTE_SLURM_USER")}
if os.environ.get("FLYTE_SLURM_KEY"):
    ssh_config["client_keys"] = [os.environ["FLYTE_SLURM_KEY"]]
if os.environ.get("FLYTE_SLURM_KNOWN_HOSTS"):
    ssh_config["known_hosts"] = [os.environ["FLYTE_SLURM_KNOWN_HOSTS"]]
remote_dir = os.environ.get("FLYTE_SLURM_REMOTE_DIR", ".flyte-slurm")

# 1. A function as a job, inside a script template ({task.fn} is where it runs).
slurm_env = flyte.TaskEnvironment(name="slurm_fn", plugin_config=SlurmFunctionConfig(
    ssh_config=ssh_config,
    sbatch_config={"time": "0-00:10", "nodes": "1", "ntasks-per-node": "1"},
    script="""#!/bin/bash
#SBATCH --job-name=my_flyte_job
#SBATCH --output=flyte_job_%j.out

echo "Starting Flyte task on Slurm"
{task.fn}
echo "Flyte task finished"
""",
    python=os.environ.get("FLYTE_SLURM_PYTHON", "python3"),
    remote_dir=remote_dir,
))


@slurm_env.task
def slurm_python_task(input_val: int) -> str:
    import time

    time.sleep(input_val)
    return f"Processed {input_val} on Slurm"


# 2. An inline script: inputs interpolated, a File output fetched back.
slurm_shell_task = SlurmShellTask(
    name="my_inline_slurm_script",
    task_config=SlurmConfig(ssh_config=ssh_config, sbatch_config={"time": "0-00:05"}, remote_dir=remote_dir),
    script="""#!/bin/bash
#SBATCH --job-name=inline_script
echo "Input value: {inputs.my_input}"
echo "Hello from Slurm! ({inputs.my_input})" > {outputs.output_file}
""",
    inputs={"my_input": int},
    output_locs=[OutputLocation(var="output_file", var_type=File, location="slurm_output.txt")],
)

driver = flyte.TaskEnvironment(name="slurm_driver")


@driver.task
async def main(n: int) -> tuple[str, str]:
    processed = await slurm_python_task.aio(n)
    greeting = await slurm_shell_task.aio(my_input=n)
    async with greeting.open("rb") as handle:
        text = (await handle.read()).decode().strip()
    return processed, text


if __name__ == "__main__":
    processed, text = flyte.run(main, 1).outputs()
    print(processed)
    print(text)
    # 3. A batch script that is already on the cluster, with arguments.
    if os.environ.get("FLYTE_SLURM_BATCH_SCRIPT"):
        existing = SlurmTask(name="my_pre_existing_slurm_script", task_config=SlurmScriptConfig(
            ssh_config=ssh_config, batch_script_path=os.environ["FLYTE_SLURM_BATCH_SCRIPT"],
            sbatch_config={"time": "0-01:00"}, batch_script_args=["--data", "/data/input.csv"],
            remote_dir=remote_dir))
        flyte.run(existing)
        print("batch script done")
