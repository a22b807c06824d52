"""The surface for plugin authors: task templates, the plugin registry, engines, code bundles, type encoders."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from ._bundle import CodeBundle, build_bundle, install_bundle
from ._codec import TypeEncoder, register_type_encoder
from ._config import ConfigMeta, check_quantity, quantity_to_float, resources_from_v1
from ._context import TaskContext, current_context
from ._engines import acquire_engine, live_engine
from ._procs import kill_processes_naming, processes_naming
from ._registry import TaskPluginRegistry
from ._task import AsyncFunctionTaskTemplate, TaskTemplate, run_in_daemon_thread
from ._threads import INTERRUPT_GRACE_S, run_blocking, shielded

__all__ = [
    "INTERRUPT_GRACE_S",
    "AsyncFunctionTaskTemplate",
    "CodeBundle",
    "ConfigMeta",
    "TaskContext",
    "TaskPluginRegistry",
    "TaskTemplate",
    "TypeEncoder",
    "acquire_engine",
    "build_bundle",
    "context_for_worker",
    "check_quantity",
    "code_bundle",
    "current_context",
    "install_bundle",
    "kill_processes_naming",
    "live_engine",
    "processes_naming",
    "quantity_to_float",
    "register_type_encoder",
    "report_link",
    "resources_from_v1",
    "run_blocking",
    "run_in_daemon_thread",
    "run_temp_dir",
    "shielded",
    "worker_context",
]

_bundle_lock = threading.Lock()


def code_bundle() -> CodeBundle:
    """The current run's code bundle, built on first use and shared by every call of the run."""
    context = _require_context("code_bundle")
    run = context.run
    with _bundle_lock:
        if run.bundle is None:
            run.bundle = build_bundle(run.options.bundle_root)
        return run.bundle  # type: ignore[no-any-return]


def report_link(label: str, url: str) -> None:
    """Show ``label: url`` (a Spark UI, a dashboard) on the current action in the run's progress."""
    _require_context("report_link").action.links[label] = url


def run_temp_dir(purpose: str) -> str:
    """A directory for the current run's temporary files, removed when the run ends."""
    return _require_context("run_temp_dir").run.temp_dir(purpose)


def _require_context(what: str) -> TaskContext:
    context = current_context.get()
    if context is None:
        raise RuntimeError(f"flyte.extend.{what}() needs a running task (call it from a template's pre/execute)")
    return context


def context_for_worker(context: TaskContext) -> dict[str, str]:
    """What a worker process needs to rebuild ``context`` with :func:`worker_context` (plain, picklable)."""
    return {"run_name": context.run_name, "action_name": context.action_name, "task_name": context.task_name,
            "raw_data_path": context.raw_data_path, "mode": context.mode}


@contextlib.contextmanager
def worker_context(identity: dict[str, str], data: dict[str, Any] | None = None) -> Iterator[TaskContext]:
    """In a process an engine started (a torch worker), make ``flyte.ctx()`` the calling task's context again:
    ``identity`` from :func:`context_for_worker`, ``data`` what ``pre`` provided that could travel."""
    from ._run import Action, RunOptions, RunState

    run = RunState(RunOptions(name=identity["run_name"], raw_data_path=identity["raw_data_path"],
                              mode=identity.get("mode", "local"), progress="quiet"))
    action = Action(identity["action_name"], identity["task_name"], None)
    context = TaskContext(run=run, action=action, task_name=identity["task_name"], data=dict(data or {}))
    token = current_context.set(context)
    try:
        yield context
    finally:
        current_context.reset(token)
