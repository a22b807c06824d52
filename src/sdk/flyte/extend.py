"""The surface for plugin authors: task templates, the plugin registry, engines, code bundles, type encoders."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any, Literal

from ._bundle import CodeBundle, build_bundle, install_bundle
from ._codec import TypeEncoder, register_type_encoder
from ._config import ConfigMeta, check_quantity, quantity_to_float, resources_from_v1
from ._context import TaskContext, current_context
from ._engines import acquire_engine, live_engine
from ._procs import kill_processes_naming, processes_naming
from ._registry import TaskPluginRegistry
from ._task import AsyncFunctionTaskTemplate, TaskTemplate, run_in_daemon_thread
from ._threads import INTERRUPT_GRACE_S, run_blocking, shielded

# flyte-sdk 2.x's names (see docs/flyte2-compatibility.md).
PRIMARY_CONTAINER_DEFAULT_NAME = "primary"
Architecture = Literal["linux/amd64", "linux/arm64"]
RuntimeTaskTemplate = AsyncFunctionTaskTemplate  # flyte-sdk's middle class: ours has one template class for both


def is_initialized() -> bool:
    """Whether ``flyte.init*`` was called in this process (runs never need it here)."""
    from ._initialize import initialized

    return initialized() is not None


def lazy_module(fullname: str) -> Any:
    """A module imported on first attribute access (an engine a plugin may not need)."""
    import importlib.util
    import sys

    if fullname in sys.modules:
        return sys.modules[fullname]
    spec = importlib.util.find_spec(fullname)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {fullname!r}")
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[fullname] = module
    loader.exec_module(module)
    return module


def pod_spec_from_resources(primary_container_name: str = PRIMARY_CONTAINER_DEFAULT_NAME,
                            requests: dict[str, str] | None = None, limits: dict[str, str] | None = None,
                            k8s_gpu_resource_key: str = "nvidia.com/gpu") -> dict[str, Any]:
    """A pod spec (the API's dict) whose primary container has these requests and limits."""

    def side(values: dict[str, str] | None) -> dict[str, str]:
        return {(k8s_gpu_resource_key if key in ("gpu", "nvidia.com/gpu") else key): str(value)
                for key, value in (values or {}).items()}

    resources = {name: side(values) for name, values in (("requests", requests), ("limits", limits)) if values}
    return {"containers": [{"name": primary_container_name, "resources": resources}]}


__all__ = [
    "INTERRUPT_GRACE_S",
    "PRIMARY_CONTAINER_DEFAULT_NAME",
    "Architecture",
    "RuntimeTaskTemplate",
    "is_initialized",
    "lazy_module",
    "pod_spec_from_resources",
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


def in_remote_pod() -> bool:
    """Whether this process runs a call of a remote run, in a pod the Kubernetes tier (or an operator, for it)
    started: a plugin then uses the engine the pod was given (spark-submit's session, RAY_ADDRESS...)."""
    import os

    from ._k8s.settings import SETTINGS_ENV

    return bool(os.environ.get(SETTINGS_ENV))


def omit_outputs() -> None:
    """In a ``python -m flyte.runtime`` process whose value is not the task's (one replica of several, where another
    one's value counts: a PyTorchJob's workers beside its master), write no outputs: the call's outcome is the
    other replica's."""
    from . import _context

    _context.omit_outputs = True


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
