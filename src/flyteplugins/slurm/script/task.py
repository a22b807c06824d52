"""Batch scripts as tasks: :class:`SlurmTask` submits a script that is already on the cluster, :class:`SlurmShellTask`
one written inline, with ``{inputs.x}`` and ``{outputs.y}`` filled in and File/Dir outputs fetched back.

```python
from flyte.io import File
from flyteplugins.slurm.script.task import OutputLocation, SlurmConfig, SlurmShellTask

hello = SlurmShellTask(
    name="hello",
    task_config=SlurmConfig(ssh_config={"host": "login.cluster.example", "username": "me"},
                            sbatch_config={"time": "0-00:05"}),
    script='''#!/bin/bash
#SBATCH --job-name=inline_script
echo "Input value: {inputs.my_input}"
echo "Hello from Slurm!" > {outputs.output_file}
''',
    inputs={"my_input": int},
    output_locs=[OutputLocation(var="output_file", var_type=File, location="/tmp/slurm_output.txt")],
)
f = flyte.run(hello, my_input=3).outputs()[0]     # a flyte.io.File, fetched from the cluster
```

Both are tasks like any other (call them in a run, ``flyte.run`` them, ``override(timeout=..., retries=...)``);
their settings (``retries``, ``timeout``, ``cache``, ``env_vars``...) are keyword arguments. A job that does not
complete with exit code 0 fails the call with a :class:`SlurmJobError` naming its state and exit code, with the
end of its stderr. File and Dir inputs are uploaded to the call's directory on the cluster and appear in the
script as their path there.
"""

from __future__ import annotations

import copy
import inspect
import os
import posixpath
import re
from collections.abc import Callable
from typing import Any, ClassVar

import msgspec

from flyte.extend import AsyncFunctionTaskTemplate, TaskPluginRegistry

from .._attempt import Attempt, attempt
from .._config import OutputLocation, SlurmConfig, SlurmScriptConfig, output_kind
from .._errors import (
    SlurmAuthenticationError,
    SlurmCommandError,
    SlurmConnectionError,
    SlurmError,
    SlurmHostKeyError,
    SlurmJobCancelledError,
    SlurmJobError,
    SlurmJobTimeoutError,
    SlurmNodeFailError,
    SlurmOutOfMemoryError,
    SlurmScriptNotFoundError,
    job_error,
)
from .._job import SlurmJob
from .._remote import fetch, kind_of, resolve
from .._script import interpolate
from .._states import JobStatus
from ..ssh_utils import SlurmCluster, SSHConfig

__all__ = [
    "OutputLocation",
    "SSHConfig",
    "SlurmAuthenticationError",
    "SlurmCluster",
    "SlurmCommandError",
    "SlurmConfig",
    "SlurmConnectionError",
    "SlurmError",
    "SlurmHostKeyError",
    "SlurmJobCancelledError",
    "SlurmJobError",
    "SlurmJobTimeoutError",
    "SlurmNodeFailError",
    "SlurmOutOfMemoryError",
    "SlurmScriptConfig",
    "SlurmScriptNotFoundError",
    "SlurmShellTask",
    "SlurmTask",
]

_SETTINGS = ("retries", "timeout", "cache", "env_vars", "secrets", "docs", "report", "short_name", "resources",
             "pod_template")


class _BatchScriptTask(AsyncFunctionTaskTemplate):
    """A task made of a name and a config rather than a function: its interface is the declared inputs and
    outputs (a function with that signature stands in for one, so the task is called, encoded and run like any)."""

    task_type: ClassVar[str] = "slurm"
    supports_reuse: ClassVar[bool] = False
    config_type: ClassVar[type] = SlurmConfig

    def __init__(self, name: Any, task_config: Any = None, *, inputs: dict[str, type] | None = None,
                 output_type: Any = None, **settings: Any) -> None:
        kind = type(self).__name__
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{kind}.name: expected a non-empty task name, got {name!r}")
        if not isinstance(task_config, self.config_type):
            raise TypeError(f"{kind}.task_config: expected a {self.config_type.__name__}, got "
                            f"{type(task_config).__name__}")
        unknown = sorted(set(settings) - set(_SETTINGS))
        if unknown:
            raise TypeError(f"{kind}(): unknown argument(s) {unknown}; task settings allowed: {', '.join(_SETTINGS)}")
        from flyte import TaskEnvironment
        from flyte._task import TaskSettings, normalize_settings

        declared = _check_inputs(kind, inputs)
        environment = TaskEnvironment(name=_identifier(name), plugin_config=task_config)
        values = normalize_settings({"short_name": name, **settings})
        super().__init__(_stand_in(name, declared, output_type), environment=environment,
                         settings=TaskSettings(plugin_config=task_config, **values))
        self.name = name
        self.interface.task_name = name

    def override(self, **changes: Any) -> _BatchScriptTask:
        """A copy with some settings changed (``timeout``, ``retries``, ``plugin_config`` of the same kind...)."""
        from flyte._task import _REMOTE_ONLY_OVERRIDES, TaskSettings, normalize_settings

        for remote_only in _REMOTE_ONLY_OVERRIDES & set(changes):
            del changes[remote_only]
        unknown = set(changes) - set(TaskSettings.__struct_fields__)
        if unknown:
            raise TypeError(f"{self.name}.override(): unknown setting(s) {sorted(unknown)}; allowed: "
                            f"{sorted(TaskSettings.__struct_fields__)}")
        if "plugin_config" in changes and not isinstance(changes["plugin_config"], self.config_type):
            raise TypeError(f"{self.name}.override(plugin_config=...): expected a {self.config_type.__name__}, got "
                            f"{type(changes['plugin_config']).__name__}")
        clone = copy.copy(self)
        clone.settings = msgspec.structs.replace(self.settings, **normalize_settings(changes))
        return clone

    async def _job(self, here: Attempt, script: str, cwd: str | None) -> tuple[SlurmJob, JobStatus]:
        config: SlurmConfig = self.plugin_config
        job, status = await here.run_job(script, dict(config.sbatch_config or {}), tuple(config.batch_script_args or ()),
                                         cwd=cwd)
        if not status.succeeded:
            error = job_error(here.where, job.job_id, status.state, status.exit_code, status.signal,
                              *job.failure_output())
            if status.state == "UNKNOWN" and status.reason:
                error.add_note(status.reason)
            raise error
        return job, status


class SlurmTask(_BatchScriptTask):
    """Submits the batch script at ``task_config.batch_script_path`` on the cluster (from the login's home, as a
    user would), with ``sbatch_config`` and ``batch_script_args``, and waits for its job. No inputs, no outputs."""

    config_type: ClassVar[type] = SlurmScriptConfig

    def __init__(self, name: str, task_config: SlurmScriptConfig, **settings: Any) -> None:
        super().__init__(name, task_config, **settings)

    async def execute(self, *args: Any, **kwargs: Any) -> None:
        config: SlurmScriptConfig = self.plugin_config
        async with attempt(config) as here:
            home = await here.link.home_dir()
            assert config.batch_script_path is not None
            path = resolve(home, config.batch_script_path)
            if await kind_of(here.link, path) != "file":
                raise SlurmScriptNotFoundError(f"{here.where}: the batch script {path} does not exist on the Slurm "
                                               f"cluster ({here.link.ssh.describe()})")
            await self._job(here, path, home)

    def custom_config(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        config: SlurmScriptConfig = self.plugin_config
        return {"ssh_config": config.ssh_config.to_dict(), "batch_script_path": config.batch_script_path,
                "batch_script_args": list(config.batch_script_args or ()),
                "sbatch_config": dict(config.sbatch_config or {})}


class SlurmShellTask(_BatchScriptTask):
    """Submits ``script`` (inline) after filling in ``{inputs.x}`` and ``{outputs.y}``; returns the File/Dir
    outputs of ``output_locs`` fetched from the cluster (one: the value; several: a tuple in their order)."""

    def __init__(self, name: str, task_config: SlurmConfig, script: str, inputs: dict[str, type] | None = None,
                 output_locs: list[OutputLocation] | None = None, **settings: Any) -> None:
        kind = type(self).__name__
        if not isinstance(script, str) or not script.strip():
            raise ValueError(f"{kind}.script: expected the batch script's text")
        if script.strip() == "#!/bin/bash":
            raise ValueError(f"{kind}.script: the script has no commands")
        if isinstance(task_config, SlurmScriptConfig):
            raise TypeError(f"{kind}.task_config: a SlurmScriptConfig names a script already on the cluster: run it "
                            "with SlurmTask; an inline script takes a SlurmConfig")
        locations = _check_output_locs(kind, output_locs)
        types = [location.var_type for location in locations]
        output_type = None if not types else types[0] if len(types) == 1 else tuple.__class_getitem__(tuple(types))
        super().__init__(name, task_config, inputs=inputs, output_type=output_type, **settings)
        self._script = script
        self._inputs = dict(inputs or {})
        self._output_locs = locations

    @property
    def script(self) -> str:
        return self._script

    @property
    def output_locs(self) -> list[OutputLocation]:
        return list(self._output_locs)

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        values = self.interface.bind(args, kwargs)
        async with attempt(self.plugin_config) as here:
            directory = here.directory
            texts: dict[str, Any] = {}
            for name, value in values.items():
                kind = _io_kind(value)
                if kind is None:
                    texts[name] = value
                else:  # the cluster cannot read this machine's files: the script gets its copy's path there
                    source = os.fspath(value.path) if kind == "dir" else await _local_file(value)
                    target = f"inputs/{name}/{getattr(value, 'name', None) or os.path.basename(source) or name}"
                    await _ensure_dir(here, directory.join("inputs", name))
                    texts[name] = await directory.put(source, target, recurse=kind == "dir")
            outputs = {location.var: resolve(directory.path, interpolate(location.location, texts, {}, here.where))
                       for location in self._output_locs}
            text = interpolate(self._script, texts, outputs, here.where)
            script = await directory.write("script.sh", text.encode(), mode=0o700)
            await self._job(here, script, directory.path)
            fetched = [await _fetch_output(here, location, outputs[location.var]) for location in self._output_locs]
        if not fetched:
            return None
        return fetched[0] if len(fetched) == 1 else tuple(fetched)

    def custom_config(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        config: SlurmConfig = self.plugin_config
        return {"ssh_config": config.ssh_config.to_dict(), "batch_script_args": list(config.batch_script_args or ()),
                "sbatch_config": dict(config.sbatch_config or {}), "script": self._script,
                "python_input_types": {name: getattr(kind, "__name__", repr(kind)) for name, kind in self._inputs.items()},
                "output_locs": [{"var": loc.var, "var_type": getattr(loc.var_type, "__name__", repr(loc.var_type)),
                                 "location": loc.location} for loc in self._output_locs]}


# -- helpers ------------------------------------------------------------------------------------------------------
def _identifier(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name) or "slurm"


def _stand_in(name: str, inputs: dict[str, Any], output_type: Any) -> Callable[..., Any]:
    """A function whose signature is the task's interface (it is never called: ``execute`` runs the job)."""

    def batch_script(**kwargs: Any) -> Any:
        raise RuntimeError(f"{name} runs as a Slurm job: call the task, not its function")

    parameters = [inspect.Parameter(key, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=kind)
                  for key, kind in inputs.items()]
    batch_script.__signature__ = inspect.Signature(parameters, return_annotation=output_type)  # type: ignore[attr-defined]
    batch_script.__annotations__ = {**inputs, "return": output_type}
    batch_script.__name__ = batch_script.__qualname__ = _identifier(name)
    batch_script.__doc__ = f"Slurm batch script task {name!r}."
    return batch_script


def _check_inputs(kind: str, inputs: Any) -> dict[str, Any]:
    if inputs is None:
        return {}
    if not isinstance(inputs, dict):
        raise TypeError(f"{kind}.inputs: expected a dict of input names to types, such as {{'my_input': int}}, got "
                        f"{type(inputs).__name__}")
    for key in inputs:
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"{kind}.inputs: {key!r} is not an identifier (it is written {{inputs.{key}}})")
    return dict(inputs)


def _check_output_locs(kind: str, output_locs: Any) -> list[OutputLocation]:
    if output_locs is None:
        return []
    if not isinstance(output_locs, (list, tuple)):
        raise TypeError(f"{kind}.output_locs: expected a list of OutputLocation, got {type(output_locs).__name__}")
    seen: set[str] = set()
    for location in output_locs:
        if not isinstance(location, OutputLocation):
            raise TypeError(f"{kind}.output_locs: every output must be an OutputLocation (a File or Dir on the "
                            f"cluster), got {location!r}")
        if location.var in seen:
            raise ValueError(f"{kind}.output_locs: {location.var!r} is given twice")
        seen.add(location.var)
    return list(output_locs)


def _io_kind(value: Any) -> str | None:
    from flyte.io import Dir, File

    if isinstance(value, File):
        return "file"
    if isinstance(value, Dir):
        return "dir"
    return None


async def _local_file(value: Any) -> str:
    """A local path of a File input (an object-store File is downloaded first)."""
    from flyte._storage import local_path

    path = local_path(value.path)
    return path if path is not None else await value.download()


async def _ensure_dir(here: Attempt, path: str) -> None:
    from .._remote import _mkdir

    await _mkdir(here.link, path)


async def _fetch_output(here: Attempt, location: OutputLocation, remote: str) -> Any:
    from flyte.io import Dir, File

    expected = output_kind(location.var_type)
    found = await kind_of(here.link, remote)
    if found is None:
        raise SlurmError(f"{here.where}: output {location.var!r}: the job completed but wrote nothing at {remote}")
    if found != expected:
        raise SlurmError(f"{here.where}: output {location.var!r}: {remote} is a {found}, the task declares a "
                         f"{expected}")
    name = posixpath.basename(remote.rstrip("/")) or location.var
    if expected == "dir":
        local = Dir.new_remote(dir_name=name)
        await fetch(here.link, remote.rstrip("/") + "/", local.path, recurse=True)
        return Dir(local.path, name=name)
    target = File.new_remote(file_name=name)
    os.makedirs(os.path.dirname(target.path), exist_ok=True)
    await fetch(here.link, remote, target.path, recurse=False)
    return File(target.path, name=name)


class _ScriptConfigOnAFunction(AsyncFunctionTaskTemplate):
    """What ``@env.task`` meets on an environment whose ``plugin_config`` is a batch script's config."""

    def __init__(self, func: Any, *, environment: Any, settings: Any) -> None:
        kind = type(settings.plugin_config).__name__
        raise TypeError(f"{getattr(func, '__name__', func)}: {kind} describes a batch script, not a function: make the "
                        "task with SlurmShellTask(name=..., task_config=SlurmConfig(...), script=...) or "
                        "SlurmTask(name=..., task_config=SlurmScriptConfig(...)); to run a function as a Slurm job, "
                        "use plugin_config=SlurmFunctionConfig(...)")


# SlurmTask and SlurmShellTask are made directly; a function given one of their configs gets a clear error.
TaskPluginRegistry.register(SlurmConfig, _ScriptConfigOnAFunction)
