"""A task's function run as a Slurm job: ``plugin_config=SlurmFunctionConfig(...)``.

```python
import flyte
from flyteplugins.slurm.function.task import SlurmFunctionConfig

env = flyte.TaskEnvironment(name="hpc", plugin_config=SlurmFunctionConfig(
    ssh_config={"host": "login.cluster.example", "username": "me", "client_keys": "~/.ssh/id_ed25519"},
    sbatch_config={"time": "0-00:10", "nodes": "1", "ntasks-per-node": "1"},
    python="/opt/envs/flyte/bin/python",
))

@env.task
def simulate(steps: int) -> float:
    ...
```

Each call sends the pickled task, its inputs and the run's code bundle over SFTP to a directory of its own on the
cluster, and submits a job that runs them with ``python -m flyte.runtime`` (the cluster's Python, which must have
this SDK installed; it is checked before the first job). The value comes back over SFTP; an exception raised by
the function comes back as its own type, with the remote traceback. A job that dies without a word (a time limit,
a node failure, the OOM killer) fails the call with a :class:`~flyteplugins.slurm.script.task.SlurmJobError` that
names the state, the exit code and the end of its stderr. Importing this module does not import asyncssh.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import shlex
import shutil
import tempfile
from typing import Any, ClassVar

import anyio
import cloudpickle

from flyte.extend import (
    AsyncFunctionTaskTemplate,
    TaskPluginRegistry,
    code_bundle,
    current_context,
    run_temp_dir,
)
from flyte.runtime import ERROR_FILE, OUTPUTS_FILE, read_outputs, write_inputs
from flyte.runtime import arguments as runtime_arguments

from .._attempt import Attempt, attempt
from .._config import SlurmFunctionConfig
from .._errors import (
    SlurmAuthenticationError,
    SlurmConnectionError,
    SlurmError,
    SlurmHostKeyError,
    SlurmJobError,
    SlurmPythonError,
    job_error,
)
from .._job import SlurmJob
from .._remote import read_file
from .._script import function_script
from .._states import JobStatus
from ..ssh_utils import SSHConfig

__all__ = [
    "SSHConfig",
    "SlurmAuthenticationError",
    "SlurmConnectionError",
    "SlurmError",
    "SlurmFunctionConfig",
    "SlurmFunctionTask",
    "SlurmHostKeyError",
    "SlurmJobError",
    "SlurmPythonError",
]

# Interpreters found able to run the runtime, per cluster login, for this process (a job that finds one broken
# later still says so, from its stderr).
_pythons_checked: dict[tuple[Any, str], str] = {}
IN_JOB_ENV = "FLYTE_SLURM_ACTION"  # set in the job to the action it runs: there, the function itself runs
_MISSING_SDK = ("No module named 'flyte'", "No module named flyte", "No module named 'cloudpickle'",
                "No module named 'msgspec'", "No module named 'anyio'")


class SlurmFunctionTask(AsyncFunctionTaskTemplate):
    """Runs the function in a Slurm job submitted over SSH (see the module's docstring)."""

    task_type: ClassVar[str] = "slurm_fn"
    supports_reuse: ClassVar[bool] = False

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        context = current_context.get()
        assert context is not None
        if os.environ.get(IN_JOB_ENV) == context.action.name:
            return await AsyncFunctionTaskTemplate.execute(self, *args, **kwargs)
        config: SlurmFunctionConfig = self.plugin_config
        local = tempfile.mkdtemp(prefix="call-", dir=run_temp_dir("slurm"))
        try:
            async with attempt(config) as here:
                return await self._run(here, config, local, args, kwargs)
        finally:
            shutil.rmtree(local, ignore_errors=True)

    async def _run(self, here: Attempt, config: SlurmFunctionConfig, local: str, args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> Any:
        directory = here.directory
        # The interpreter is checked (in the login node's shell, started meanwhile) while the files go over SFTP.
        checking = asyncio.ensure_future(check_python(here, config.python))
        try:
            inputs = os.path.join(local, "inputs.msgpack")
            write_inputs(self, inputs, *args, **kwargs)
            # In the job the call runs once, as it is: retries, the timeout and the cache are this side's.
            remote_task = self.override(retries=0, timeout=0, cache="disable")
            task_path = await directory.write("task.pkl", cloudpickle.dumps(remote_task))
            inputs_path = await directory.put(inputs, "inputs.msgpack")
            bundle = await anyio.to_thread.run_sync(code_bundle)  # built once per run; packing can take a while
            bundle_path = await here.space.bundle(str(bundle.archive), bundle.digest) if bundle else None
            outputs_path = directory.join("outputs")
            command = runtime_command(config.python, action=here.action.name, task=task_path, inputs=inputs_path,
                                      outputs=outputs_path, raw_data=directory.join("raw"), run_name=here.run.name,
                                      bundle=bundle_path)
            script = await directory.write("job.sh", function_script(config.script, command).encode(), mode=0o700)
            await checking
        except BaseException:
            checking.cancel()
            with contextlib.suppress(BaseException):
                await checking
            raise
        job, status = await here.run_job(script, dict(config.sbatch_config or {}), cwd=directory.path,
                                         finished_hint=lambda: _outputs_written(here, outputs_path))

        fetched = os.path.join(local, "outputs")
        os.makedirs(fetched)
        for name in (OUTPUTS_FILE, ERROR_FILE):
            data = await read_file(here.link, posixpath.join(outputs_path, name))
            if data is not None:
                await anyio.Path(fetched, name).write_bytes(data)
        if not os.listdir(fetched):
            raise _job_failure(here, job, status, outputs_path, config.python)
        try:
            return read_outputs(self, fetched, here.run.raw_data_path)
        except BaseException as error:
            error.add_note(f"(raised in Slurm job {job.job_id} on {here.link.ssh.host}"
                           f"{', nodes ' + status.nodes if status.nodes else ''})")
            raise

    def custom_config(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        config: SlurmFunctionConfig = self.plugin_config
        return {"ssh_config": config.ssh_config.to_dict(), "sbatch_config": dict(config.sbatch_config or {}),
                "script": config.script}


async def _outputs_written(here: Attempt, outputs_path: str) -> bool:
    """Whether the runtime wrote its outputs or error document (it writes them last)."""
    import asyncssh

    async def listed(sftp: Any) -> bool:
        try:
            return bool(set(await sftp.listdir(outputs_path)) & {OUTPUTS_FILE, ERROR_FILE})
        except asyncssh.SFTPNoSuchFile:
            return False

    return await here.link.with_sftp(listed, "looking for the outputs")


def runtime_command(python: str, *, action: str, task: str, inputs: str, outputs: str, raw_data: str, run_name: str,
                    bundle: str | None) -> str:
    """The job's command: ``python -m flyte.runtime`` on the call's files, marked as running the action itself.
    ``python`` is inserted as written (it may be a command such as ``srun python3``)."""
    arguments = runtime_arguments(task=task, inputs=inputs, outputs=outputs, raw_data_path=raw_data,
                                  run_name=run_name, action=action, bundle=bundle)
    return (f"{IN_JOB_ENV}={shlex.quote(action)} {python} -m flyte.runtime "
            + " ".join(shlex.quote(argument) for argument in arguments))


async def check_python(here: Attempt, python: str) -> None:
    """Fail early, and clearly, when the cluster's Python cannot run this SDK's runtime (checked on the login node,
    once per process, cluster login and interpreter)."""
    key = (here.link.cluster, python)
    if key in _pythons_checked:
        await here.link.prepare()
        return
    probe = "import sys, flyte, flyte.runtime; print(flyte.__version__, sys.version.split()[0])"
    result = await here.link.run(f"{python} -c {shlex.quote(probe)}")
    if not result.ok:
        detail = (result.stderr.strip().splitlines() or [result.stdout.strip() or "no output"])[-1]
        raise SlurmPythonError(python_problem(here, python, detail, result.exit_status))
    _pythons_checked[key] = result.stdout.strip()


def python_problem(here: Attempt, python: str, detail: str, exit_status: int | None) -> str:
    if exit_status == 127 or "not found" in detail:
        what = f"the cluster has no Python {python!r} on its PATH"
    else:
        what = f"the cluster's Python {python!r} cannot import this SDK"
    return (f"{here.where}: {what} ({here.link.ssh.describe()}: {detail}). The job runs the task with "
            "`python -m flyte.runtime`, so that interpreter needs this SDK and the task's packages installed "
            "(`pip install flyte-distributed`); point SlurmFunctionConfig(python=...) at one that has them")


def _job_failure(here: Attempt, job: SlurmJob, status: JobStatus, outputs_path: str, python: str) -> SlurmError:
    stderr, stdout, stderr_path, merged = job.failure_output()
    output = stderr or stdout
    if any(marker in output for marker in _MISSING_SDK) or (status.exit_code == 127 and "not found" in output):
        last = output.strip().splitlines()[-1] if output.strip() else ""
        return SlurmPythonError(python_problem(here, python, f"in job {job.job_id}: {last}",
                                               status.exit_code))
    if status.succeeded:
        return SlurmJobError(f"{here.where}: Slurm job {job.job_id} COMPLETED but left no outputs in {outputs_path}: "
                             "does the script template run {task.fn}?", job_id=job.job_id, state=status.state,
                             exit_code=status.exit_code, stderr_tail=stderr, stdout_tail=stdout)
    error = job_error(here.where, job.job_id, status.state, status.exit_code, status.signal, stderr, stdout,
                      stderr_path, merged)
    if status.reason and status.state == "UNKNOWN":
        error.add_note(status.reason)
    return error


TaskPluginRegistry.register(SlurmFunctionConfig, SlurmFunctionTask)
