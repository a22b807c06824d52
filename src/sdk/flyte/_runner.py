"""``flyte.run``, ``flyte.with_runcontext`` and implicit runs (a task called outside any run)."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from ._controller import controller_for
from ._interrupts import interrupt_reason, keep_loop_awake, run_in_helper_thread, run_owning_loop
from ._run import Run, RunOptions, RunState

T = TypeVar("T")

# Options of the innermost with_runcontext(...) block, used by implicit runs too.
_default_options: ContextVar[RunOptions | None] = ContextVar("flyte_run_options", default=None)


async def execute_run(task: Any, args: tuple[Any, ...], kwargs: dict[str, Any], options: RunOptions) -> Run:
    """Run ``task`` as the root action of a new run; always closes the run (engines stopped, temp data removed)."""
    from ._progress import attach_progress

    state = RunState(_remote_options(options) if options.mode == "remote" else options)
    if options.mode == "remote":
        from ._k8s.controller import RemoteController

        state.controller = RemoteController(_run_settings(_remote_settings(), options))
    detach = attach_progress(state)
    outputs: Any = None
    error: BaseException | None = None
    try:
        outputs = await controller_for(state).submit(task, args, kwargs, parent=None, run=state)
        state.status = "succeeded"
    except Exception as exc:
        state.status = "timed_out" if isinstance(exc, TimeoutError) else "failed"
        error = exc
    except BaseException:
        state.status = "aborted"
        state.interrupted_by = interrupt_reason()
        raise
    finally:
        try:
            await state.close()
        finally:
            detach()
    if error is not None:
        error.add_note(f"flyte: run {state.name} {state.status} in {task.name}")
    from ._records import write_run

    write_run(state, outputs, error)
    return Run(state, outputs, error, task.interface.output)


def _remote_settings() -> Any:
    from ._k8s.settings import current

    settings = current()
    if settings is None:
        raise ValueError("mode='remote' needs a cluster: give flyte.init(kubernetes={...}) or a config file with a "
                         "kubernetes section (namespace, storage, ...), then flyte.init_from_config()")
    return settings


def _run_settings(settings: Any, options: RunOptions) -> Any:
    """The cluster settings with this run's own ``service_account`` and ``labels`` (flyte-sdk's run options) on
    top; they reach the pods, so the run's nested calls get them too."""
    import msgspec

    recorded = options.recorded
    changes: dict[str, Any] = {}
    if recorded.get("service_account"):
        changes["service_account"] = recorded["service_account"]
    if recorded.get("labels"):
        changes["labels"] = {**settings.labels, **recorded["labels"]}
    if not changes:
        return settings
    from ._k8s.settings import parse

    return parse({**msgspec.structs.asdict(settings), **changes}, "with_runcontext")


def _remote_options(options: RunOptions) -> RunOptions:
    """A remote run's name is fixed up front: its data lives under ``<storage>/runs/<name>/``."""
    import os

    import msgspec

    name = options.name or f"r{os.urandom(5).hex()}"
    raw = options.raw_data_path or f"{_remote_settings().storage_uri}/runs/{name}/data"
    return msgspec.structs.replace(options, name=name, raw_data_path=raw)


async def run_implicit(task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A task awaited outside any run: a run of its own, with the plugin's pre/post, returning the value."""
    options = _default_options.get() or RunOptions(progress="quiet")
    run = await execute_run(task, args, kwargs, options)
    return run.value()


def run_sync_implicit(task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return call_sync(run_implicit, task, args, kwargs)


def call_sync(func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run an async function to completion from sync code, also where this thread's event loop is running (a
    notebook): then it runs on a fresh loop in a helper thread and this thread waits. Ctrl-C and SIGTERM stop it
    cleanly either way (see ``_interrupts``)."""
    import asyncio

    try:
        asyncio.get_running_loop()
        loop_running = True
    except RuntimeError:
        loop_running = False
    return run_in_helper_thread(func, *args) if loop_running else run_owning_loop(func, *args)


class _RunCall:
    """``flyte.run(task, *args, **kwargs) -> Run`` (sync) and ``await flyte.run.aio(task, ...)``."""

    def __init__(self, options: RunOptions | None) -> None:
        self._options = options

    def _resolved(self) -> RunOptions:
        options = self._options or _default_options.get()
        if options is None:
            from ._k8s.settings import current
            from .extend import in_remote_pod

            settings = current()
            # Inside a pod of a remote run, flyte.run is a new run of its own: local unless asked otherwise. A
            # launcher of the user's own that runs in a pod (in_cluster: true, remote: true) goes remote.
            remote = settings is not None and settings.remote and not in_remote_pod()
            options = RunOptions(mode="remote" if remote else "local")
        return options

    def __call__(self, task: Any, /, *args: Any, **kwargs: Any) -> Run:
        """Run ``task`` locally and wait. Raises the task's own exception if it fails."""
        run = call_sync(execute_run, task, args, kwargs, self._resolved())
        run.outputs()
        return run

    async def aio(self, task: Any, /, *args: Any, **kwargs: Any) -> Run:
        """Run ``task`` on the current event loop. Raises the task's own exception if it fails. Cancelling the
        awaiting task (``asyncio.wait_for``, a notebook's interrupt) aborts the run and cleans up first."""
        if threading.current_thread() is not threading.main_thread():
            run = await execute_run(task, args, kwargs, self._resolved())
        else:  # where signals arrive: see keep_loop_awake
            import asyncio

            ticker = asyncio.ensure_future(keep_loop_awake())
            try:
                run = await execute_run(task, args, kwargs, self._resolved())
            finally:
                ticker.cancel()
        run.outputs()
        return run


class RunContext:
    """What :func:`with_runcontext` returns: ``.run(task, ...)``/``.run.aio(...)`` with these options, or a ``with``
    block in which implicit runs (tasks called directly) use them."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.run = _RunCall(options)
        self._token: Any = None

    def __enter__(self) -> RunContext:
        self._token = _default_options.set(self.options)
        return self

    def __exit__(self, *exc: object) -> None:
        _default_options.reset(self._token)


# flyte-sdk 2.x's with_runcontext keywords that only a backend gives a meaning to: accepted and recorded.
_RECORDED_OPTIONS = frozenset({
    "service_account", "version", "copy_style", "dry_run", "copy_bundle_to", "interactive_mode", "run_base_dir",
    "run_start_time", "project", "domain", "labels", "annotations", "interruptible", "log_level", "log_format",
    "user_log_level", "reset_root_logger", "queue", "max_action_concurrency", "notifications",
    "cache_lookup_scope", "preserve_original_types", "debug", "tracked", "tracked_strict",
})


def with_runcontext(mode: str | None = None, /, **options: Any) -> RunContext:
    """Options for a run, flyte-sdk style: ``flyte.with_runcontext("local", name=..., env_vars=...).run(task, ...)``.

    ``mode`` is ``"local"`` (the default) or ``"remote"``: on the Kubernetes cluster that ``flyte.init`` or the
    config file names. Our options: ``name``,
    ``raw_data_path`` (kept after the run), ``env_vars``, ``overwrite_cache``, ``disable_run_cache``,
    ``custom_context`` (read in tasks with ``flyte.get_custom_context()``), ``cache_dir``, ``keep_raw_data``,
    ``progress`` ("auto", "rich", "plain", "quiet"), ``bundle_root`` (where the code bundle's files are taken from).
    flyte-sdk's remote-only options (``service_account``, ``labels``, ``queue``, ``copy_style``...) are accepted and
    recorded on the run."""
    if "mode" in options:
        if mode is not None:
            raise TypeError("with_runcontext(): mode given twice")
        mode = options.pop("mode")
    allowed = set(RunOptions.__struct_fields__) - {"recorded", "mode"}
    recorded = {key: options.pop(key) for key in list(options) if key in _RECORDED_OPTIONS}
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(f"with_runcontext(): unknown option(s) {sorted(unknown)}; allowed: "
                        f"{sorted(allowed | _RECORDED_OPTIONS | {'mode'})}")
    if mode not in (None, "local", "remote", "hybrid"):
        raise ValueError(f"with_runcontext(mode=...): {mode!r}; allowed: 'local', 'remote' (a Kubernetes cluster)")
    if mode in ("remote", "hybrid"):
        _remote_settings()  # fail here, naming what is missing, rather than at run time
        mode = "remote"
    if options.get("custom_context") is not None:
        options["custom_context"] = _check_custom_context(options["custom_context"])
    else:
        options.pop("custom_context", None)
    return RunContext(RunOptions(mode=mode or "local", recorded=recorded, **options))


def _check_custom_context(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise TypeError(f"with_runcontext(custom_context=...): expected a dict of str to str, got {value!r}")
    return dict(value)


run = _RunCall(None)
