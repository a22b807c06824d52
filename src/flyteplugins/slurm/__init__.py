"""Slurm plugin: Python functions, existing batch scripts and inline shell scripts run as jobs on a Slurm cluster
reached over SSH (``sbatch`` on its login node), with flytekit's names.

- ``from flyteplugins.slurm.function.task import SlurmFunctionConfig``: ``plugin_config`` of tasks whose function
  runs as a job (the cluster's Python needs this SDK);
- ``from flyteplugins.slurm.script.task import SlurmTask, SlurmScriptConfig``: a batch script already on the cluster;
- ``from flyteplugins.slurm.script.task import SlurmShellTask, SlurmConfig, OutputLocation``: an inline script with
  ``{inputs.x}``/``{outputs.y}`` and File/Dir outputs fetched back;
- ``from flyteplugins.slurm.ssh_utils import SSHConfig``: the connection (host key verified, public-key login).

Importing the plugin does not import asyncssh: connections are made when a task first runs.
"""

from .function.task import SlurmFunctionConfig, SlurmFunctionTask
from .script.task import OutputLocation, SlurmConfig, SlurmScriptConfig, SlurmShellTask, SlurmTask
from .ssh_utils import SlurmCluster, SSHConfig

__all__ = [
    "OutputLocation",
    "SSHConfig",
    "SlurmCluster",
    "SlurmConfig",
    "SlurmFunctionConfig",
    "SlurmFunctionTask",
    "SlurmScriptConfig",
    "SlurmShellTask",
    "SlurmTask",
]
