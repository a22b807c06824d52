"""Task templates: what a decorated function becomes, and the hooks plugins implement.

A call goes: ``task(...)`` -> controller -> ``pre`` -> ``execute`` (the function) -> ``post`` -> encoded outputs, and
``release`` always runs at the end (see :meth:`AsyncFunctionTaskTemplate.release`).
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ClassVar, Generic, ParamSpec, TypeVar

import anyio
import anyio.lowlevel
import msgspec

from ._codec import Interface
from ._config import (
    Cache,
    PodTemplate,
    Resources,
    RetryStrategy,
    ReusePolicy,
    Secret,
    Timeout,
    normalize_env_vars,
    normalize_secrets,
)
from ._context import current_context
from ._threads import INTERRUPT_GRACE_S, run_blocking

if TYPE_CHECKING:
    from ._environment import TaskEnvironment

P = ParamSpec("P")
R = TypeVar("R")

# In the threads that run sync task bodies, ``token`` is the run's event loop, so nested calls hop back to it.
_worker_thread = threading.local()


# flyte-sdk's override() settings that only a Flyte backend acts on.
_REMOTE_ONLY_OVERRIDES = frozenset({"service_account", "max_inline_io_bytes", "queue", "interruptible", "entrypoint",
                                    "produces_artifacts", "links"})


class TaskSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything ``override`` may change. Frozen: an override builds a new task with new settings."""

    short_name: str
    plugin_config: Any = None
    resources: Resources | None = None
    retries: RetryStrategy = msgspec.field(default_factory=RetryStrategy)
    timeout: Timeout | None = None
    cache: Cache = msgspec.field(default_factory=Cache)
    env_vars: dict[str, str] = msgspec.field(default_factory=dict)
    secrets: tuple[Secret, ...] = ()
    pod_template: PodTemplate | str | None = None
    reusable: ReusePolicy | None = None
    report: bool = False
    docs: str | None = None


class TaskTemplate(Generic[P, R]):
    """A task: a named unit with an interface and settings that a controller can run.

    Subclasses set ``task_type`` (its name for remote backends) and ``supports_reuse`` (whether its plugin config
    may be used on a ``reusable=`` environment).
    """

    task_type: ClassVar[str] = "python"
    supports_reuse: ClassVar[bool] = False

    def __init__(self, func: Callable[P, Any], *, environment: TaskEnvironment, settings: TaskSettings) -> None:
        self.func = func
        self.environment = environment
        self.settings = settings
        self.is_async = inspect.iscoroutinefunction(func)
        self.name = f"{environment.name}.{func.__name__}"
        self.interface = Interface(func, self.name)
        self._check_reuse()
        functools.update_wrapper(self, func)  # type: ignore[arg-type]

    # -- settings ---------------------------------------------------------------------------------------------
    @property
    def plugin_config(self) -> Any:
        return self.settings.plugin_config

    @property
    def short_name(self) -> str:
        return self.settings.short_name

    def _check_reuse(self) -> None:
        if (self.settings.reusable is not None and self.settings.plugin_config is not None
                and not reuse_supported(type(self))):
            raise ValueError(
                f"{self.name}: plugin_config {type(self.settings.plugin_config).__name__} cannot be used with "
                f"reusable=ReusePolicy(...): the {type(self).__name__} plugin does not support reuse; "
                "set reusable=None or use a plugin that declares supports_reuse"
            )

    def override(self, **changes: Any) -> TaskTemplate[P, R]:
        """A new task with some settings changed; this one is left as it is.

        Accepts ``plugin_config``, ``resources``, ``retries``, ``timeout``, ``env_vars``, ``secrets``, ``cache``,
        ``short_name``, ``pod_template``, ``reusable``, ``report``, ``docs``. Explicit falsy values (``retries=0``,
        ``env_vars={}``) are applied. A config of another plugin rebuilds the task as that plugin's template; the
        reusable rule is checked as at definition.
        """
        for remote_only in _REMOTE_ONLY_OVERRIDES & set(changes):
            del changes[remote_only]  # flyte-sdk settings with no local meaning: accepted, nothing to change here
        if changes.get("reusable") == "off":
            changes["reusable"] = None
        allowed = set(TaskSettings.__struct_fields__)
        unknown = set(changes) - allowed
        if unknown:
            raise TypeError(f"{self.name}.override(): unknown setting(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        settings = msgspec.structs.replace(self.settings, **normalize_settings(changes))
        template_cls: type[TaskTemplate[Any, Any]] = type(self)
        if "plugin_config" in changes:
            from ._registry import TaskPluginRegistry

            template_cls = TaskPluginRegistry.template_for(settings.plugin_config)
        return make_template(template_cls, self.func, environment=self.environment, settings=settings)

    # -- calling ----------------------------------------------------------------------------------------------
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Call the task. Async tasks return an awaitable. A sync task returns its value, except on a thread whose
        event loop is running (inside an async task, a notebook cell), where it returns an awaitable and its body
        runs in a worker thread."""
        if self.is_async:
            return self.aio(*args, **kwargs)
        if _loop_running():
            caller = current_context.get()
            if caller is not None:
                # In an async task: started now, so it runs even where the caller forgets to await it (flyte-sdk
                # would block here); awaiting the returned task gives the value, and the caller ends after it.
                import asyncio

                started = asyncio.ensure_future(self.aio(*args, **kwargs))
                caller.started_calls.append(started)
                return started
            return self.aio(*args, **kwargs)
        token = getattr(_worker_thread, "token", None)
        if token is not None:
            parent = current_context.get()
            return anyio.from_thread.run(self._submit_from_thread, parent, args, kwargs, token=token)
        from ._runner import run_sync_implicit

        return run_sync_implicit(self, args, kwargs)

    def forward(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Call the function itself, outside the controller (flyte-sdk's ``forward``): no action, no plugin hooks;
        an async task gives its coroutine."""
        return self.func(*args, **kwargs)

    async def _submit_from_thread(self, parent: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return await _controller(parent).submit(self, args, kwargs, parent=parent)

    async def aio(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await the task (sync or async) from async code."""
        parent = current_context.get()
        if parent is None:
            from ._runner import run_implicit

            return await run_implicit(self, args, kwargs)  # type: ignore[no-any-return]
        return await _controller(parent).submit(self, args, kwargs, parent=parent)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class AsyncFunctionTaskTemplate(TaskTemplate[P, R]):
    """The template plugins subclass. Override any of:

    - ``async pre(*args, **kwargs) -> dict``: bring the engine up; the dict is merged into ``flyte.ctx().data``.
      Engines should be taken with :func:`flyte.extend.acquire_engine`, whose lease the core ends with the call.
    - ``async execute(*args, **kwargs)``: run the function (default: awaited, or in a worker thread if sync).
    - ``async post(return_value) -> return_value``: after a successful body; may transform the result.
    - ``async release(data, error)``: the guaranteed hook. It runs once per attempt after ``pre`` started, whether
      the body returned, raised, timed out or was cancelled, shielded from cancellation; ``data`` is what ``pre``
      returned (empty if ``pre`` itself failed) and ``error`` the exception or None.
    - ``custom_config() -> dict``: the plugin's serialized config for remote backends.
    """

    blocking_body: ClassVar[bool] = False
    """True for engines whose calls block (a Spark action, ``ray.get``, a Dask ``gather``): the body, async or sync,
    then runs on an event loop of its own in a daemon thread, so the caller's loop stays free and a timeout or
    Ctrl-C acts on time through :meth:`interrupt`. Plain tasks run on the caller's loop."""

    async def pre(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {}

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        if self.is_async:
            return await self.func(*args, **kwargs)
        return await run_in_daemon_thread(self.func, args, kwargs, name=self.name,
                                          grace=INTERRUPT_GRACE_S if self.blocking_body else 0.0)

    async def post(self, return_value: Any) -> Any:
        return return_value

    async def release(self, data: dict[str, Any], error: BaseException | None) -> None:
        return None

    def interrupt(self, data: dict[str, Any]) -> None:
        """Stop the engine work this call started, so that a body blocked in an engine call returns soon (a
        ``blocking_body`` task that timed out, was cancelled or got Ctrl-C). Called from another thread; should
        be quick; ``data`` is what ``pre`` returned. The body then gets a short grace to finish before it is left
        behind (see ``flyte.extend.run_blocking``)."""
        return None

    def custom_config(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        config = self.plugin_config
        return msgspec.to_builtins(config) if config is not None else {}


_controller_for: Any = None


def _controller(parent: Any) -> Any:
    """The controller for a call made by ``parent`` (imported on first call: the controller module imports this
    one): its run's (remote runs), else the local one."""
    global _controller_for
    if _controller_for is None:
        from ._controller import controller_for

        _controller_for = controller_for
    return _controller_for(parent.run if parent is not None else None)


async def run_in_daemon_thread(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                               name: str, grace: float = 0.0) -> Any:
    """Run a sync task body in a thread of its own, with the caller's context, without blocking the loop.

    On cancellation (a timeout) the call returns after at most ``grace`` seconds and the thread is abandoned: a
    daemon, so a body still blocked in an engine call cannot hold up interpreter exit (anyio's pooled threads would
    be joined there). Nested task calls from the body hop back to this loop."""
    token = anyio.lowlevel.current_token()

    def body() -> Any:
        _worker_thread.token = token
        try:
            return func(*args, **kwargs)
        finally:
            _worker_thread.token = None

    return await run_blocking(body, grace=grace, name=f"flyte-task {name}")


def reuse_supported(cls: type) -> bool:
    """Our ``supports_reuse``, or flyte-sdk's ``supports_reuse_policy``."""
    return bool(getattr(cls, "supports_reuse", False) or getattr(cls, "supports_reuse_policy", False))


def make_template(cls: type[TaskTemplate[Any, Any]], func: Callable[..., Any], *, environment: Any,
                  settings: TaskSettings) -> TaskTemplate[Any, Any]:
    """An instance of the template class ``cls`` for ``func``.

    Plugins written as flyte-sdk's are (``@dataclass(kw_only=True)`` subclasses declaring ``plugin_config``,
    ``task_type``... as fields) have a generated ``__init__`` that knows nothing of ours: their fields get their
    defaults, the base is initialized as usual, ``plugin_config`` is the call's config, then their ``__post_init__``
    runs, as flyte-sdk would run it."""
    import dataclasses

    if not dataclasses.is_dataclass(cls):
        return cls(func, environment=environment, settings=settings)
    if cls.__dict__.get("__hash__", object.__hash__) is None:
        # The dataclass made equality field-wise (all tasks of the plugin equal) and dropped hashing: tasks are
        # distinct objects, as ours are.
        cls.__eq__ = object.__eq__  # type: ignore[method-assign,assignment]
        cls.__hash__ = object.__hash__  # type: ignore[method-assign,assignment]
    template = cls.__new__(cls)
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            template.__dict__[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            template.__dict__[field.name] = field.default_factory()
    TaskTemplate.__init__(template, func, environment=environment, settings=settings)
    template.__dict__["plugin_config"] = settings.plugin_config  # the dataclass field shadows our property
    post_init = getattr(template, "__post_init__", None)
    if post_init is not None:
        post_init()
    return template


def _loop_running() -> bool:
    try:
        import asyncio

        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


def normalize_settings(values: dict[str, Any]) -> dict[str, Any]:
    """Turn user-facing spellings (``retries=3``, ``timeout=60``, ``cache="auto"``) into settings values."""
    out = dict(values)
    if "retries" in out:
        out["retries"] = RetryStrategy.of(out["retries"])
    if "timeout" in out:
        out["timeout"] = Timeout.of(out["timeout"])
    if "cache" in out:
        out["cache"] = Cache.of(out["cache"])
    if "env_vars" in out:
        out["env_vars"] = normalize_env_vars("env_vars", out["env_vars"]) or {}
    if "secrets" in out:
        out["secrets"] = normalize_secrets(out["secrets"])
    if "resources" in out and out["resources"] is not None and not isinstance(out["resources"], Resources):
        raise TypeError(f"resources: expected flyte.Resources, got {type(out['resources']).__name__}")
    if "reusable" in out and out["reusable"] is not None and not isinstance(out["reusable"], ReusePolicy):
        raise TypeError(f"reusable: expected flyte.ReusePolicy or None, got {type(out['reusable']).__name__}")
    if "short_name" in out and (not isinstance(out["short_name"], str) or not out["short_name"]):
        raise ValueError(f"short_name: expected a non-empty string, got {out['short_name']!r}")
    return out


TaskCall = Coroutine[Any, Any, Any]
