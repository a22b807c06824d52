"""``flyte.remote``: look up runs after they ended.

flyte-sdk's ``flyte.remote`` talks to a Flyte backend. Here runs are local (or on Kubernetes), and every finished
run leaves a record (see ``flyte._records``), so the useful subset works without a backend: ``Run.get(name)``,
``Run.listall()``, and on a run ``status``/``phase``, ``url``, ``outputs()`` (flyte-sdk's ``ActionOutputs`` shape:
``outputs()[0]`` or ``.o0``), ``raise_for_status()``, ``wait()``. The other names of flyte-sdk's module exist so that
imports work; using them raises ``NotImplementedError`` saying that they need a Flyte backend.
"""

from __future__ import annotations

from typing import Any

from ._run import ActionOutputs

__all__ = ["Action", "ActionDetails", "ActionInputs", "ActionOutputs", "App", "Artifact", "Condition",
           "PartitionSchema", "Project", "Run", "RunDetails", "Secret", "SecretTypes", "Settings", "Task",
           "TaskDetails", "TimeFilter", "Trigger", "TriggerDetails", "User", "auth_metadata", "upload_dir",
           "upload_file"]


class ActionInputs(dict):  # type: ignore[type-arg]
    """Inputs by name (not recorded for local runs)."""


class Run:
    """A finished run's record. ``Run.get(name)``; ``Run.listall(limit=100)`` (newest first)."""

    def __init__(self, record: dict[str, Any]) -> None:
        self._record = record

    @classmethod
    def get(cls, name: str) -> Run:
        from . import _records

        record = _records.read_run(name)
        if record is None:
            from .errors import ActionNotFoundError

            raise ActionNotFoundError(f"no recorded run named {name!r} in {_records.runs_dir()}")
        return cls(record)

    @classmethod
    def listall(cls, in_phase: Any = None, task_name: str | None = None, limit: int = 100, **_: Any) -> list[Run]:
        from . import _records

        runs = []
        for name in _records.list_runs():
            record = _records.read_run(name)
            if record is None:
                continue
            run = cls(record)
            if in_phase is not None and run.phase not in {str(p).upper() for p in (
                    in_phase if isinstance(in_phase, (list, tuple, set)) else [in_phase])}:
                continue
            if task_name is not None and not any(a["task"] == task_name for a in record["actions"]):
                continue
            runs.append(run)
            if len(runs) >= limit:
                break
        return runs

    @property
    def name(self) -> str:
        return str(self._record["name"])

    @property
    def status(self) -> str:
        return str(self._record["status"])

    @property
    def phase(self) -> str:
        return self.status.upper()

    @property
    def url(self) -> str:
        from ._records import run_url

        return run_url(self.name)

    def done(self) -> bool:
        return True

    def wait(self, quiet: bool = False, wait_for: str = "terminal") -> None:
        """A recorded run has ended: nothing to wait for."""

    def raise_for_status(self) -> None:
        if self.status != "succeeded":
            raise RuntimeError(f"run {self.name} {self.status}: {self._record.get('error')}")

    def outputs(self) -> ActionOutputs:
        """The outputs, as ``ActionOutputs`` (a task returning a tuple has one output per element)."""
        from . import _records

        self.raise_for_status()
        value = _records.read_outputs(self.name, self._record)
        return ActionOutputs(value if isinstance(value, tuple) else (value,))

    def details(self) -> dict[str, Any]:
        """The whole record: status, timings, error and the action tree."""
        return dict(self._record)

    def __repr__(self) -> str:
        return f"flyte.remote.Run(name={self.name!r}, status={self.status!r})"


class _NeedsBackend:
    """A flyte-sdk remote entity: only a Flyte backend has it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._refuse()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for method in ("get", "listall", "create", "fetch", "delete", "update"):
            setattr(cls, method, classmethod(lambda c, *a, **k: c._refuse()))

    @classmethod
    def _refuse(cls) -> Any:
        raise NotImplementedError(
            f"flyte.remote.{cls.__name__} needs a Flyte backend, which this SDK does not use: runs are local or on "
            "Kubernetes. flyte.remote.Run.get(name) looks up finished runs."
        )


class ActionDetails:
    """One action of a recorded run: ``ActionDetails.get(run_name=..., name=...)``. flyte-sdk names a run's root
    action ``a0``; that name finds the root here too. Local actions have no log links: ``pb2.attempts[-1].log_info``
    is empty, so code that prints them prints nothing."""

    def __init__(self, run_name: str, record: dict[str, Any]) -> None:
        from types import SimpleNamespace

        self.run_name = run_name
        self._record = record
        attempts = [SimpleNamespace(log_info=[], attempt=i) for i in range(max(1, int(record.get("attempts") or 1)))]
        self.pb2 = SimpleNamespace(attempts=attempts)

    @classmethod
    def get(cls, uri: str | None = None, /, run_name: str | None = None, name: str | None = None) -> ActionDetails:
        if run_name is None:
            raise ValueError("ActionDetails.get: give run_name= (and name=, default the root action)")
        actions = Run.get(run_name).details()["actions"]
        wanted = name or "a0"
        if wanted == "a0" and actions:  # flyte-sdk's name of the root action
            return cls(run_name, actions[0])
        for action in _walk(actions):
            if action["name"] == wanted:
                return cls(run_name, action)
        from .errors import ActionNotFoundError

        raise ActionNotFoundError(f"run {run_name} has no action {wanted!r}")

    @property
    def name(self) -> str:
        return str(self._record["name"])

    @property
    def task_name(self) -> str:
        return str(self._record["task"])

    @property
    def phase(self) -> str:
        return str(self._record["status"]).upper()

    @property
    def error_info(self) -> str | None:
        return self._record.get("error")

    @property
    def attempts(self) -> int:
        return int(self._record.get("attempts") or 0)

    def __repr__(self) -> str:
        return f"flyte.remote.ActionDetails(run={self.run_name!r}, name={self.name!r}, phase={self.phase!r})"


def _walk(actions: list[dict[str, Any]]) -> Any:
    for action in actions:
        yield action
        yield from _walk(action.get("children", []))


Action = ActionDetails


class App(_NeedsBackend): ...
class Artifact(_NeedsBackend): ...
class Condition(_NeedsBackend): ...
class PartitionSchema(_NeedsBackend): ...
class Project(_NeedsBackend): ...
class RunDetails(_NeedsBackend): ...
class Secret(_NeedsBackend): ...
class SecretTypes(_NeedsBackend): ...
class Settings(_NeedsBackend): ...
class Task(_NeedsBackend): ...
class TaskDetails(_NeedsBackend): ...
class TimeFilter(_NeedsBackend): ...
class Trigger(_NeedsBackend): ...
class TriggerDetails(_NeedsBackend): ...
class User(_NeedsBackend): ...


def upload_file(*args: Any, **kwargs: Any) -> Any:
    return _NeedsBackend._refuse()


def upload_dir(*args: Any, **kwargs: Any) -> Any:
    return _NeedsBackend._refuse()


def auth_metadata(*kv: tuple[str, str]) -> Any:
    return _NeedsBackend._refuse()
