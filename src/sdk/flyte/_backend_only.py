"""flyte-sdk names that only a Flyte backend gives a meaning to: triggers, apps, conditions, image builds, deployments,
checkpoints in blob storage.

Declarations (``flyte.Cron("0 * * * *")``, ``flyte.Trigger(...)``, ``flyte.Documentation(...)``) are accepted and kept,
so programs that declare them at module level import and run their tasks locally. Operations (``flyte.deploy``,
``flyte.serve``, ``flyte.build``, ``flyte.new_condition``...) raise ``NotImplementedError`` saying so.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ._syncify import sync_and_aio


class _Declaration:
    """A backend-only declaration: its arguments are kept (``args``, ``kwargs``) and nothing else happens."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        shown = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"flyte.{type(self).__name__}({', '.join(shown)})"


class Cron(_Declaration):
    """A schedule for a trigger (backend only)."""


class FixedRate(_Declaration):
    """A fixed-rate schedule for a trigger (backend only)."""


class OnArtifact(_Declaration):
    """A trigger on an artifact (backend only)."""


class TriggeredPartition(_Declaration):
    """A partition key of an artifact trigger (backend only)."""


class Trigger(_Declaration):
    """A trigger that starts runs of a deployed task (backend only). ``Trigger.hourly()``... work as declarations."""

    @classmethod
    def _every(cls, *args: Any, **kwargs: Any) -> Trigger:
        return cls(*args, **kwargs)

    daily = hourly = minutely = weekly = monthly = _every


class ConditionWebhook(_Declaration):
    """A webhook called when a condition is created (backend only)."""


class Documentation(_Declaration):
    """A task's documentation for the backend's UI."""


class Checkpoint(_Declaration):
    """Checkpoints in blob storage between attempts (backend only)."""


BaseCheckpoint = Checkpoint


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"flyte.{self._name}"


TriggerTime = _Sentinel("TriggerTime")
TriggeredArtifact = _Sentinel("TriggeredArtifact")


@runtime_checkable
class CachePolicy(Protocol):
    """A cache version policy: ``get_version(salt, params) -> str`` (recorded in ``flyte.Cache(policies=...)``)."""

    def get_version(self, salt: str, params: Any) -> str: ...


@runtime_checkable
class Link(Protocol):
    """A link shown next to an action in the backend's UI."""

    def get_link(self, run_name: str, project: str, domain: str, context: Any, parent_action_name: str,
                 action_name: str, pod_name: str, **kwargs: Any) -> str: ...


@runtime_checkable
class AppHandle(Protocol):
    """A served app (backend only)."""


def _needs_backend(name: str) -> Any:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"flyte.{name} needs a Flyte backend, which this SDK does not use: tasks run "
                                  "locally or on Kubernetes (see docs/flyte2-compatibility.md)")

    refuse.__name__ = refuse.__qualname__ = name
    refuse.__doc__ = f"flyte-sdk's {name}: needs a Flyte backend; raises NotImplementedError here."
    return sync_and_aio(refuse)  # `await flyte.deploy.aio(...)` refuses the same way


build = _needs_backend("build")
build_images = _needs_backend("build_images")
deploy = _needs_backend("deploy")
serve = _needs_backend("serve")
with_servecontext = _needs_backend("with_servecontext")
new_condition = _needs_backend("new_condition")
rerun = _needs_backend("rerun")
run_python_script = _needs_backend("run_python_script")
latest_checkpoint = _needs_backend("latest_checkpoint")
load_interactive_ctx = _needs_backend("load_interactive_ctx")
load_plugin_config = _needs_backend("load_plugin_config")
ImageBuild = _needs_backend("ImageBuild")
