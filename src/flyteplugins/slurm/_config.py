"""The plugin's configuration types, with flytekit's names, fields and order. Frozen, validated where written;
importing them loads no SSH library.

- :class:`SlurmFunctionConfig` runs a task's function as a Slurm job (``script`` an optional template around it).
- :class:`SlurmConfig` is the inline shell script's (:class:`~flyteplugins.slurm.script.task.SlurmShellTask`);
  :class:`SlurmScriptConfig` adds ``batch_script_path``, an existing script on the cluster
  (:class:`~flyteplugins.slurm.script.task.SlurmTask`).
- :class:`OutputLocation` names a File or Dir output of a shell script and where on the cluster it is written.

Every config also takes ``remote_dir`` (where the per-run directories go on the cluster: relative to the login's
home, or absolute; it must be visible from the compute nodes, as a home directory is on most clusters) and
``keep_remote_dir`` (leave a run's directory there, for debugging; ``with_runcontext(keep_raw_data=True)`` does
the same).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from flyte.extend import ConfigMeta

from .ssh_utils import SSHConfig

TASK_FN = "{task.fn}"
DEFAULT_REMOTE_DIR = ".flyte-slurm"
_OPTION = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
# What the plugin itself decides for the jobs it submits.
_RESERVED_OPTIONS = {"wait": "the plugin follows the job itself", "parsable": "the plugin reads the job id itself",
                     "wrap": "the script is the task's"}


def check_sbatch_config(owner: str, value: Any) -> dict[str, str | None]:
    """``{option: value}`` for ``sbatch --option=value``: names without the dashes; a value of ``True`` (or
    ``None``) is a flag (``{"exclusive": True}``); numbers are written as text."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{owner}.sbatch_config: expected a dict of sbatch options such as "
                        f"{{'time': '0-00:10', 'nodes': '1'}}, got {type(value).__name__}")
    checked: dict[str, str | None] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise TypeError(f"{owner}.sbatch_config: option names must be strings, got {key!r}")
        name = key[2:] if key.startswith("--") else key
        if not _OPTION.match(name) or len(name) == 1:
            raise ValueError(f"{owner}.sbatch_config[{key!r}]: not an sbatch long option name "
                             "(write it without dashes, e.g. 'job-name', 'time', 'ntasks-per-node')")
        if name in _RESERVED_OPTIONS:
            raise ValueError(f"{owner}.sbatch_config[{key!r}]: not allowed: {_RESERVED_OPTIONS[name]}")
        if item is True or item is None:
            checked[name] = None
        elif item is False:
            raise ValueError(f"{owner}.sbatch_config[{key!r}]: False is not an sbatch value; leave the option out")
        elif isinstance(item, (str, int, float)):
            text = str(item)
            if "\n" in text or "\0" in text:
                raise ValueError(f"{owner}.sbatch_config[{key!r}]: a value cannot hold a newline")
            checked[name] = text
        else:
            raise TypeError(f"{owner}.sbatch_config[{key!r}]: expected a string, a number or True (a flag), got "
                            f"{type(item).__name__}")
    return checked


def _check_common(owner: str, config: Any) -> None:
    msgspec.structs.force_setattr(config, "ssh_config", SSHConfig.of(config.ssh_config, f"{owner}.ssh_config"))
    msgspec.structs.force_setattr(config, "sbatch_config", check_sbatch_config(owner, config.sbatch_config))
    if not isinstance(config.remote_dir, str) or not config.remote_dir.strip() or "\n" in config.remote_dir:
        raise ValueError(f"{owner}.remote_dir: expected a directory on the cluster (relative to the login's home, "
                         f"or absolute), got {config.remote_dir!r}")
    if not isinstance(config.keep_remote_dir, bool):
        raise TypeError(f"{owner}.keep_remote_dir: expected True or False, got {type(config.keep_remote_dir).__name__}")


def _check_args(owner: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{owner}.batch_script_args: expected a list of arguments such as ['--data', '/data/in.csv'], "
                        f"got {type(value).__name__}")
    for item in value:
        if not isinstance(item, (str, int, float)) or isinstance(item, bool):
            raise TypeError(f"{owner}.batch_script_args: expected strings (or numbers), got {item!r}")
    return tuple(str(item) for item in value)


class SlurmFunctionConfig(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """Run the task's function as a Slurm job (``@env.task`` on an environment with this ``plugin_config``).

    - ``ssh_config``: :class:`SSHConfig`, or its dict form ``{"host": ..., "username": ..., "client_keys": ...}``.
    - ``sbatch_config``: ``sbatch`` options, ``{"time": "0-00:10", "nodes": "1"}`` -> ``--time=0-00:10 --nodes=1``.
    - ``script``: a batch script template; ``{task.fn}`` marks where the function runs. Without one the job is
      ``#!/bin/bash`` and the function.
    - ``python``: the cluster's Python that runs the function (``python3`` on the job's ``PATH``, or a path). It must
      have this SDK installed (``pip install flyte-distributed``) with the packages the task imports; the plugin
      checks it on the login node before the first job and says so when it is missing.
    """

    __positional__ = ("ssh_config", "sbatch_config", "script")

    ssh_config: Any
    sbatch_config: dict[str, Any] | None = None
    script: str | None = None
    python: str = "python3"
    remote_dir: str = DEFAULT_REMOTE_DIR
    keep_remote_dir: bool = False

    def __post_init__(self) -> None:
        _check_common("SlurmFunctionConfig", self)
        if self.script is not None:
            if not isinstance(self.script, str):
                raise TypeError(f"SlurmFunctionConfig.script: expected the batch script's text, got "
                                f"{type(self.script).__name__}")
            if TASK_FN not in self.script:
                raise ValueError("SlurmFunctionConfig.script: the template must contain {task.fn} where the task's "
                                 "function runs")
        if not isinstance(self.python, str) or not self.python.strip() or "\n" in self.python:
            raise ValueError(f"SlurmFunctionConfig.python: expected the cluster's Python interpreter (a command or a "
                             f"path), got {self.python!r}")


class SlurmConfig(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """A Slurm job from a batch script (:class:`SlurmShellTask`'s inline script; :class:`SlurmScriptConfig` for
    one that is already on the cluster).

    - ``ssh_config``: :class:`SSHConfig` or its dict form.
    - ``sbatch_config``: ``sbatch`` options (``--key=value``; they take precedence over the script's ``#SBATCH``).
    - ``batch_script_args``: arguments given to the script (``$1``...).
    """

    __positional__ = ("ssh_config", "sbatch_config", "batch_script_args")

    ssh_config: Any
    sbatch_config: dict[str, Any] | None = None
    batch_script_args: tuple[str, ...] | None = None
    remote_dir: str = DEFAULT_REMOTE_DIR
    keep_remote_dir: bool = False

    def __post_init__(self) -> None:
        owner = type(self).__name__
        _check_common(owner, self)
        msgspec.structs.force_setattr(self, "batch_script_args", _check_args(owner, self.batch_script_args))


class SlurmScriptConfig(SlurmConfig, frozen=True, kw_only=True):
    """A batch script already on the cluster: ``batch_script_path`` (absolute, or relative to the login's home),
    submitted from the login's home directory as a user would."""

    __positional__ = ("ssh_config", "sbatch_config", "batch_script_args", "batch_script_path")

    batch_script_path: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.batch_script_path, str) or not self.batch_script_path.strip():
            raise ValueError("SlurmScriptConfig.batch_script_path: must be provided: the path of the batch script on "
                             "the Slurm cluster")


class OutputLocation(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """A shell script's output: ``var`` (its name, ``{outputs.var}`` in the script), ``var_type`` (``flyte.io.File``
    or ``flyte.io.Dir``) and ``location`` (where the script writes it on the cluster; may use ``{inputs.x}``; a
    relative path is under the job's directory). The plugin fetches it when the job succeeds."""

    __positional__ = ("var", "var_type", "location")

    var: str
    var_type: Any
    location: str

    def __post_init__(self) -> None:
        if not isinstance(self.var, str) or not self.var.isidentifier():
            raise ValueError(f"OutputLocation.var: expected an identifier, got {self.var!r}")
        if not isinstance(self.location, str) or not self.location.strip():
            raise ValueError(f"OutputLocation.location ({self.var}): expected a path on the cluster, got "
                             f"{self.location!r}")
        if output_kind(self.var_type) is None:
            raise ValueError(f"OutputLocation.var_type ({self.var}): only flyte.io.File and flyte.io.Dir (and their "
                             f"subclasses) are supported, got {self.var_type!r}")


def output_kind(var_type: Any) -> str | None:
    """"file" or "dir" for a File or Dir type (flytekit's FlyteFile/FlyteDirectory by name too), else None."""
    import typing

    from flyte.io import Dir, File

    origin = typing.get_origin(var_type) or var_type
    if isinstance(origin, type):
        if issubclass(origin, File):
            return "file"
        if issubclass(origin, Dir):
            return "dir"
        names = {klass.__name__ for klass in origin.__mro__}
        if "FlyteFile" in names:
            return "file"
        if "FlyteDirectory" in names:
            return "dir"
    return None
