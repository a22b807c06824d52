"""The surface for plugin authors: task templates, the plugin registry, engines, code bundles, type encoders."""

from __future__ import annotations

import threading

from ._bundle import CodeBundle, build_bundle, install_bundle
from ._codec import TypeEncoder, register_type_encoder
from ._context import TaskContext, current_context
from ._engines import acquire_engine, live_engine
from ._registry import TaskPluginRegistry
from ._task import AsyncFunctionTaskTemplate, TaskTemplate

__all__ = [
    "AsyncFunctionTaskTemplate",
    "CodeBundle",
    "TaskContext",
    "TaskPluginRegistry",
    "TaskTemplate",
    "TypeEncoder",
    "acquire_engine",
    "build_bundle",
    "code_bundle",
    "current_context",
    "install_bundle",
    "live_engine",
    "register_type_encoder",
    "report_link",
    "run_temp_dir",
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
