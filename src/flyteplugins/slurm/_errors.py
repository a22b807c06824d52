"""What can go wrong between here and a Slurm job, as errors that say where and why.

Every class is a :class:`flyte.errors.RuntimeUserError` (``code`` names the case), so ``except RuntimeUserError``
catches them as it catches any task failure. A function task's own exception is not wrapped: it reaches the caller
as its own type (see ``function/task.py``).
"""

from __future__ import annotations

import signal as _signal

from flyte.errors import RuntimeUserError


class SlurmError(RuntimeUserError):
    """Base of the plugin's errors."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(code or type(self).__name__, message)


class SlurmConnectionError(SlurmError, ConnectionError):
    """The login node could not be reached, or the connection dropped and could not be made again."""


class SlurmAuthenticationError(SlurmError):
    """The login node refused the keys, or a key could not be read."""


class SlurmHostKeyError(SlurmError):
    """The login node's host key is not the one ``known_hosts`` trusts (or is in none of them)."""


class SlurmCommandError(SlurmError):
    """A command on the login node failed (``sbatch`` refusing an option, a missing batch script...)."""

    def __init__(self, message: str, command: str = "", exit_status: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.command = command
        self.exit_status = exit_status
        self.stderr = stderr


class SlurmPythonError(SlurmError):
    """The cluster's Python cannot run this SDK's task runtime (missing, or without the SDK installed)."""


class SlurmJobError(SlurmError):
    """A job ended badly: ``job_id``, ``state`` (FAILED, CANCELLED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY...),
    ``exit_code``, ``signal`` and the end of its output (``stderr_tail``, ``stdout_tail``)."""

    def __init__(self, message: str, job_id: str = "", state: str = "", exit_code: int | None = None,
                 signal: int | None = None, stderr_tail: str = "", stdout_tail: str = "") -> None:
        super().__init__(message, code=state or None)
        self.job_id = job_id
        self.state = state
        self.exit_code = exit_code
        self.signal = signal
        self.stderr_tail = stderr_tail
        self.stdout_tail = stdout_tail


class SlurmJobTimeoutError(SlurmJobError):
    """Slurm stopped the job at its time limit (``sbatch_config={"time": ...}``). Not a ``TimeoutError``: that
    would read as the task's own ``timeout`` passing."""


class SlurmJobCancelledError(SlurmJobError):
    """The job was cancelled from outside this task (``scancel``, an administrator, a preemption)."""


class SlurmNodeFailError(SlurmJobError):
    """A node of the job failed (NODE_FAIL, BOOT_FAIL)."""


class SlurmOutOfMemoryError(SlurmJobError):
    """The job used more memory than it asked for (OUT_OF_MEMORY): raise ``sbatch_config["mem"]``."""


_HINTS = {
    "TIMEOUT": "it reached its time limit; raise sbatch_config['time']",
    "OUT_OF_MEMORY": "it used more memory than it was allocated; raise sbatch_config['mem'] (or 'mem-per-cpu')",
    "NODE_FAIL": "a node it ran on failed",
    "BOOT_FAIL": "a node it was given failed to boot",
    "CANCELLED": "it was cancelled outside this task (scancel, an administrator, a preemption)",
    "PREEMPTED": "a higher-priority job preempted it",
    "DEADLINE": "it could not end before its deadline",
}
_CLASSES: dict[str, type[SlurmJobError]] = {
    "TIMEOUT": SlurmJobTimeoutError,
    "DEADLINE": SlurmJobTimeoutError,
    "CANCELLED": SlurmJobCancelledError,
    "PREEMPTED": SlurmJobCancelledError,
    "NODE_FAIL": SlurmNodeFailError,
    "BOOT_FAIL": SlurmNodeFailError,
    "OUT_OF_MEMORY": SlurmOutOfMemoryError,
}


def job_error(where: str, job_id: str, state: str, exit_code: int | None, signal: int | None,
              stderr_tail: str = "", stdout_tail: str = "", stderr_path: str = "",
              merged: bool = False) -> SlurmJobError:
    """The error of a job that ended in ``state`` (the end of its output included; ``merged``: stderr went to the
    stdout file, sbatch's default)."""
    how = f"ended {state}"
    if signal:
        try:
            how += f" (killed by {_signal.Signals(signal).name})"
        except ValueError:
            how += f" (killed by signal {signal})"
    elif exit_code is not None and (exit_code or state == "FAILED"):
        how += f" with exit code {exit_code}"
    message = f"{where}: Slurm job {job_id} {how}"
    hint = _HINTS.get(state)
    if hint:
        message += f": {hint}"
    if stderr_tail:
        if merged:
            source = f"output (stdout and stderr{', ' + stderr_path if stderr_path else ''})"
        else:
            source = f"stderr{f' ({stderr_path})' if stderr_path else ''}"
        message += f"\nLast lines of its {source}:\n{stderr_tail}"
    elif stdout_tail:
        message += f"\nLast lines of its output:\n{stdout_tail}"
    kind = _CLASSES.get(state, SlurmJobError)
    return kind(message, job_id=job_id, state=state, exit_code=exit_code, signal=signal, stderr_tail=stderr_tail,
                stdout_tail=stdout_tail)


class SlurmScriptNotFoundError(SlurmError, FileNotFoundError):
    """``SlurmScriptConfig.batch_script_path`` is not a file on the cluster."""
