"""The local controller: runs a task call in this process, on the caller's event loop.

Path of every call: bind and encode inputs -> new action -> cache lookup -> attempts (retries with backoff, each under
the timeout) -> decode inputs -> ``pre`` -> ``execute`` -> ``post`` -> encode output -> ``release`` (always) ->
decode output for the caller. Encoding both ways makes a value that could not cross a process boundary fail here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from ._context import TaskContext, current_context
from ._engines import release_call_leases
from ._grouping import parent_action
from ._interrupts import interrupt_reason
from ._run import Action, RunState
from ._task import AsyncFunctionTaskTemplate, TaskTemplate
from ._threads import BlockingCall, run_on_own_loop
from .errors import (
    DeadlineExceededError,
    FlyteError,
    MaxRuntimeExceededError,
    NonRecoverableError,
    RuntimeUserError,
    TaskTimeoutError,
)

T = TypeVar("T")
_BASE_PRE = AsyncFunctionTaskTemplate.pre
_BASE_POST = AsyncFunctionTaskTemplate.post
_BASE_RELEASE = AsyncFunctionTaskTemplate.release
_BASE_EXECUTE = AsyncFunctionTaskTemplate.execute


_user_error_classes: dict[type, type] = {}


def as_user_error(exc: Exception) -> Exception:
    """A task's own exception, made also a :class:`flyte.errors.RuntimeUserError` (``code`` its class name), as
    flyte-sdk reports it: ``except ValueError`` and ``except flyte.errors.RuntimeUserError`` both catch it, and its
    class keeps its name, message, attributes and traceback. The SDK's own errors pass as they are."""
    if isinstance(exc, FlyteError):
        return exc
    kind = type(exc)
    both = _user_error_classes.get(kind)
    if both is None:
        try:
            both = type(kind.__name__, (kind, RuntimeUserError), {
                "__module__": kind.__module__, "__qualname__": kind.__qualname__,
                # Pickled (to another process), it is the task's own exception again.
                "__reduce__": lambda self, kind=kind: (_rebuild, (kind, self.args, dict(self.__dict__))),
            })
        except TypeError:  # a class that cannot be combined (a layout conflict): leave it as it is
            return exc
        _user_error_classes[kind] = both
    try:
        wrapped = both.__new__(both, *exc.args)
        wrapped.__dict__.update(exc.__dict__)
        wrapped.args = exc.args
    except Exception:  # noqa: BLE001 - an exotic constructor: the original is still the truest report
        return exc
    wrapped.code, wrapped.kind, wrapped.worker = kind.__name__, "user", None
    wrapped.__traceback__ = exc.__traceback__
    wrapped.__suppress_context__ = True  # the task's error is the story, not our re-raise of it
    return wrapped


def _rebuild(kind: type, args: tuple[Any, ...], state: dict[str, Any]) -> BaseException:
    exc = kind.__new__(kind, *args)
    exc.args = args
    exc.__dict__.update({k: v for k, v in state.items() if k not in ("code", "kind", "worker")})
    return exc  # type: ignore[no-any-return]


class LocalController:
    async def submit(self, task: TaskTemplate[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], *,
                     parent: TaskContext | None, run: RunState | None = None) -> Any:
        """Run ``task(*args, **kwargs)`` as a child of ``parent`` (or as a root action of ``run``)."""
        run = parent.run if parent is not None else run
        assert run is not None
        interface = task.interface
        inputs = interface.bind(args, kwargs)
        encoded = interface.encode_inputs(inputs, run.raw_data_path)
        action = run.new_action(task.name, parent_action(parent))
        try:
            output = await self.run_action(task, encoded, run, action, parent, inputs)
        except Exception as exc:
            raise as_user_error(exc) from exc.__cause__
        return interface.decode_output(output, run.raw_data_path)

    async def run_action(self, task: TaskTemplate[Any, Any], encoded: dict[str, bytes], run: RunState,
                         action: Action, parent: TaskContext | None, inputs: dict[str, Any] | None = None) -> bytes:
        """Run one action to its encoded output: cache, retries, timeout. Raises the task's own exception."""
        settings = task.settings
        key = directory = None
        if settings.cache.behavior != "disable" and not run.options.disable_run_cache:
            from . import _cache  # hashing is only needed by cached tasks

            directory = _cache.cache_dir(run.options.cache_dir)
            key = _cache.cache_key(task, encoded, inputs)
            if not run.options.overwrite_cache:
                hit = _cache.read(directory, key)
                if hit is not None:
                    action.cached = True
                    action.status = "succeeded"
                    action.started = action.ended = time.monotonic()
                    run.notify("done", action)
                    return hit

        action.started = time.monotonic()
        action.status = "running"
        if run.listeners:
            run.notify("start", action)
        if settings.report:
            from .report import start_report

            start_report(run, action, task.name)
        output = await self._attempts(task, encoded, run, action, parent)
        if key is not None and directory is not None and output[:1] != b"x":
            # Offloaded outputs (type encoders) point into the run's raw data, which does not outlive the run.
            from . import _cache

            _cache.write(directory, key, output)
        return output

    async def _attempts(self, task: TaskTemplate[Any, Any], encoded: dict[str, bytes], run: RunState,
                        action: Action, parent: TaskContext | None) -> bytes:
        """Attempts until one succeeds, the retries are spent, or the timeout or deadline passes."""
        settings = task.settings
        retries = settings.retries
        deadline_s = settings.timeout.deadline_seconds if settings.timeout is not None else 0.0
        deadline_at = time.monotonic() + deadline_s if deadline_s else None
        while True:
            action.attempts += 1
            try:
                output = await self._attempt(task, encoded, run, action, parent, deadline_at)
                break
            except TaskTimeoutError as exc:
                self._finish(run, action, "timed_out", exc)
                raise
            except Exception as exc:
                if action.attempts <= retries.count and not isinstance(exc, NonRecoverableError):
                    if run.listeners:
                        run.notify("retry", action)
                    await anyio.sleep(retries.delay(action.attempts))
                    continue
                self._finish(run, action, "failed", exc)
                raise
            except BaseException as exc:  # cancellation, KeyboardInterrupt
                reason = interrupt_reason()
                self._finish(run, action, "aborted",
                             f"interrupted by {reason}" if reason else f"cancelled ({type(exc).__name__})")
                raise
        self._finish(run, action, "succeeded", None)
        return output

    @staticmethod
    def _finish(run: RunState, action: Action, status: str, error: BaseException | str | None) -> None:
        action.status = status
        action.ended = time.monotonic()
        if isinstance(error, str):
            action.error = error
        elif error is not None:
            action.error = f"{type(error).__name__}: {error}"
        if run.reports:  # flyte.report was used in this run: write the action's page before the progress shows it
            from .report import write_report

            write_report(run, action)
        if run.listeners:
            run.notify("done", action)

    async def _attempt(self, task: TaskTemplate[Any, Any], encoded: dict[str, bytes], run: RunState,
                       action: Action, parent: TaskContext | None, deadline_at: float | None = None) -> bytes:
        interface = task.interface
        inputs = interface.decode_inputs(encoded, run.raw_data_path)
        args, kwargs = interface.split(inputs)
        context = TaskContext(run=run, action=action, task_name=task.name, parent=parent)
        token = current_context.set(context)
        env_layers = (run.options.env_vars, task.settings.env_vars)
        restore = _apply_env(*env_layers) if env_layers[0] or env_layers[1] else None
        try:
            result = await time_limited(task, action, deadline_at, lambda: self._body(task, context, args, kwargs))
            return interface.encode_output(result, run.raw_data_path)
        finally:
            if restore:
                _restore_env(restore)
            current_context.reset(token)

    async def _body(self, task: TaskTemplate[Any, Any], context: TaskContext, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        result = await self._run_body(task, context, args, kwargs)
        if context.started_calls:  # sync tasks the body called without awaiting them (on this loop)
            import asyncio

            loop = asyncio.get_running_loop()
            pending = [call for call in context.started_calls if call.get_loop() is loop]
            await asyncio.gather(*pending, return_exceptions=True)
        return result

    @staticmethod
    async def _run_body(task: TaskTemplate[Any, Any], context: TaskContext, args: tuple[Any, ...],
                        kwargs: dict[str, Any]) -> Any:
        kind = type(task)
        hooks = _hooks(kind)
        if hooks is None:
            if task.is_async:  # a plain async function task: no hooks to run, no extra coroutine layer
                return await task.func(*args, **kwargs)
            hooks = (False, False, False, True)
        has_pre, has_post, has_release, plain_execute = hooks
        error: BaseException | None = None
        try:
            if has_pre:
                data = await task.pre(*args, **kwargs)  # type: ignore[attr-defined]
                if data:
                    context.data.update(data)
            if getattr(kind, "blocking_body", False):
                result = await _execute_off_loop(task, context, args, kwargs)
            elif plain_execute and task.is_async:
                result = await task.func(*args, **kwargs)
            else:
                result = await task.execute(*args, **kwargs)  # type: ignore[attr-defined]
            if has_post:
                result = await task.post(result)  # type: ignore[attr-defined]
            return result
        except BaseException as exc:
            error = exc
            raise
        finally:
            if context.leases or has_release:
                with anyio.CancelScope(shield=True):
                    try:
                        await task.release(context.data, error)  # type: ignore[attr-defined]
                    finally:
                        release_call_leases(context.leases)


async def time_limited(task: TaskTemplate[Any, Any], action: Action, deadline_at: float | None,
                       body: Callable[[], Awaitable[T]]) -> T:
    """``body()`` under the task's per-attempt timeout and the deadline over all attempts (the nearer one); when one
    passes, the body is cancelled (its cleanup runs) and the matching :class:`flyte.errors.TaskTimeoutError` raised."""
    timeout = task.settings.timeout
    per_attempt = timeout.seconds if timeout is not None else 0.0
    to_deadline = max(0.0, deadline_at - time.monotonic()) if deadline_at is not None else None
    if not per_attempt and to_deadline is None:
        return await body()
    by_deadline = to_deadline is not None and (not per_attempt or to_deadline < per_attempt)
    limit = to_deadline if by_deadline else per_attempt
    try:
        with anyio.fail_after(limit):
            return await body()
    except TimeoutError as exc:
        if isinstance(exc, TaskTimeoutError):
            raise
        assert timeout is not None
        if by_deadline:
            raise DeadlineExceededError(
                f"{task.name} (action {action.name}) passed its deadline of {timeout.deadline_seconds:g}s over all "
                "attempts; it was cancelled and its resources released") from None
        raise MaxRuntimeExceededError(
            f"{task.name} (action {action.name}) exceeded its timeout of {per_attempt:g}s; it was cancelled and its "
            "resources released") from None


async def _execute_off_loop(task: Any, context: TaskContext, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """An engine task's body (async or sync) on a loop of its own in a daemon thread: blocking engine calls in an
    ``async def`` body then leave the caller's loop free (timers, progress, siblings), and a timeout or Ctrl-C
    interrupts the engine's work (the template's ``interrupt``) instead of waiting for it."""

    def keep_engines_until_done(call: BlockingCall) -> None:
        # The body outlived its grace and may still be inside the engine: its leases end with it, not now, so the
        # run's end waits a little before stopping an engine under it (Ray aborts when shut down under a ray.get).
        held = list(context.leases)
        context.leases.clear()
        call.when_done(lambda: release_call_leases(held))

    return await run_on_own_loop(lambda: task.execute(*args, **kwargs),
                                 interrupt=lambda: task.interrupt(context.data), on_abandon=keep_engines_until_done,
                                 name=f"flyte-task {task.name}")


_hook_cache: dict[type, tuple[bool, bool, bool, bool] | None] = {}


def _hooks(kind: type) -> tuple[bool, bool, bool, bool] | None:
    """Which hooks a template class overrides: (pre, post, release, plain execute); None when it overrides none."""
    try:
        return _hook_cache[kind]
    except KeyError:
        pass
    has_pre = getattr(kind, "pre", _BASE_PRE) is not _BASE_PRE
    has_post = getattr(kind, "post", _BASE_POST) is not _BASE_POST
    has_release = getattr(kind, "release", _BASE_RELEASE) is not _BASE_RELEASE
    plain_execute = getattr(kind, "execute", _BASE_EXECUTE) is _BASE_EXECUTE
    hooks = (has_pre, has_post, has_release, plain_execute)
    # Sync functions still go through execute (a worker thread); pre may take engine leases, so keep the slow path.
    _hook_cache[kind] = None if hooks == (False, False, False, True) else hooks
    return _hook_cache[kind]


def _apply_env(*layers: dict[str, str]) -> dict[str, str | None] | None:
    """Set the run's and task's environment variables for the call; returns what to restore. Process-wide: concurrent
    calls that set the same variable to different values see the one set last."""
    merged: dict[str, str] = {}
    for layer in layers:
        if layer:
            merged.update(layer)
    if not merged:
        return None
    previous = {name: os.environ.get(name) for name in merged}
    os.environ.update(merged)
    return previous


def _restore_env(previous: dict[str, str | None]) -> None:
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


controller = LocalController()


def controller_for(run: RunState | None) -> Any:
    """The controller of a run's calls: the run's own (the Kubernetes tier's), else the local one."""
    own = run.controller if run is not None else None
    return own if own is not None else controller
