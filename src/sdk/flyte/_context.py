"""The task context: who is running (run, action), where its data goes, and what the plugin's ``pre`` provided.

One ``TaskContext`` per task call, held in a ``contextvars.ContextVar`` so concurrent calls under ``gather`` each
see their own.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._run import Action, RunState

# Set (flyte.extend.omit_outputs) by a plugin in a replica whose value is not the task's: a PyTorchJob's workers run
# the function too, but the master's value is the one that counts, and theirs must not overwrite it. Kept here, not in
# flyte.runtime, which runs as __main__ (a second import of it would hold a second flag).
omit_outputs = False


class TaskContext:
    """What a running task can see of itself. ``flyte.ctx()`` returns it inside a task and ``None`` outside."""

    __slots__ = ("action", "run", "data", "task_name", "parent", "leases", "started_calls")

    def __init__(self, *, run: RunState, action: Action, task_name: str, data: dict[str, Any] | None = None,
                 parent: TaskContext | None = None) -> None:
        self.run = run
        self.action = action
        self.task_name = task_name
        self.data: dict[str, Any] = data if data is not None else {}
        self.parent = parent
        self.leases: list[Any] = []  # engine leases taken by this call's pre; released when the call ends
        self.started_calls: list[Any] = []  # sync tasks called without await: this call ends after them

    @property
    def run_name(self) -> str:
        return self.run.name

    @property
    def action_name(self) -> str:
        return self.action.name

    @property
    def mode(self) -> str:
        """``"local"`` for the in-process controller, ``"remote"`` inside a cluster pod."""
        return self.run.mode

    @property
    def raw_data_path(self) -> RawDataPath:
        """A directory (local path) or URI under which this run's offloaded data (DataFrames, files) is written.
        A string; ``.path`` gives the same, as flyte-sdk's ``RawDataPath`` does."""
        return RawDataPath(self.run.raw_data_path)

    @property
    def custom_context(self) -> dict[str, str]:
        """The run's custom context with enclosing ``flyte.custom_context`` blocks on top."""
        from ._grouping import get_custom_context

        return get_custom_context()

    @property
    def attempt_number(self) -> int:
        """0 for the first attempt, 1 for the first retry..."""
        return max(0, self.action.attempts - 1)

    @property
    def report(self) -> Any:
        """This task's :class:`flyte.report.Report`."""
        from .report import current_report

        return current_report()

    @property
    def rank(self) -> int:
        """Global rank inside a distributed worker (``RANK``); 0 elsewhere."""
        return _env_int("RANK", 0)

    @property
    def local_rank(self) -> int:
        return _env_int("LOCAL_RANK", 0)

    @property
    def world_size(self) -> int:
        return _env_int("WORLD_SIZE", 1)

    @property
    def node_rank(self) -> int:
        """The node (agent) index in a multi-node job: torchrun's ``GROUP_RANK``."""
        return _env_int("GROUP_RANK", _env_int("NODE_RANK", 0))

    def __repr__(self) -> str:
        return f"TaskContext(task={self.task_name!r}, run={self.run_name!r}, action={self.action_name!r})"


class RawDataPath(str):
    """The run's raw data location: a ``str``, with flyte-sdk's ``.path`` and ``get_random_remote_path``."""

    @property
    def path(self) -> str:
        return str(self)

    def get_random_remote_path(self, file_name: str | None = None) -> str:
        import uuid

        return os.path.join(str(self), uuid.uuid4().hex, *([file_name] if file_name else []))


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value and value.lstrip("-").isdigit() else default


current_context: ContextVar[TaskContext | None] = ContextVar("flyte_task_context", default=None)


class NullTaskContext:
    """What ``flyte.ctx()`` returns outside a task, as in flyte-sdk: false in a boolean test (``if flyte.ctx():``),
    every field None."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return None

    def __repr__(self) -> str:
        return "NullTaskContext()"


NULL_TASK_CONTEXT = NullTaskContext()


def ctx() -> TaskContext | NullTaskContext:
    """The current task's context; outside any task a false ``NullTaskContext`` whose fields are None."""
    return current_context.get() or NULL_TASK_CONTEXT
