"""``flyte.group``, ``flyte.trace`` and ``flyte.custom_context``: how calls inside a task show up in its run.

A group and a traced call are nodes of the run's action tree, like task calls: calls made inside ``with
flyte.group("name")`` hang under the group's node; a ``@flyte.trace`` function called in a task is a node with its
inputs, output (as text) and timing. Outside a task all three do nothing but run the code.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

from ._context import TaskContext, current_context
from ._run import Action

F = TypeVar("F", bound=Callable[..., Any])

# The innermost group or trace node opened in the current task call, with the call it belongs to.
_open_node: ContextVar[tuple[TaskContext, Action] | None] = ContextVar("flyte_open_node", default=None)
_custom: ContextVar[dict[str, str] | None] = ContextVar("flyte_custom_context", default=None)

_TEXT_LIMIT = 300


def parent_action(context: TaskContext | None) -> Action | None:
    """Where a call made in ``context`` goes in the tree: the open group or trace node, else the calling action."""
    if context is None:
        return None
    node = _open_node.get()
    if node is not None and node[0] is context:
        return node[1]
    return context.action


@contextlib.contextmanager
def _node(task_name: str, kind: str) -> Iterator[Action | None]:
    context = current_context.get()
    if context is None:
        yield None
        return
    run = context.run
    action = run.new_action(task_name, parent_action(context), kind)
    action.status = "running"
    action.started = time.monotonic()
    action.attempts = 1
    if run.listeners:
        run.notify("start", action)
    token = _open_node.set((context, action))
    try:
        yield action
    except BaseException as exc:
        action.status = "failed" if isinstance(exc, Exception) else "aborted"
        action.error = f"{type(exc).__name__}: {exc}"
        raise
    else:
        action.status = "succeeded"
    finally:
        _open_node.reset(token)
        action.ended = time.monotonic()
        if run.listeners:
            run.notify("done", action)


@contextlib.contextmanager
def group(name: str) -> Iterator[None]:
    """Group the task calls made inside the block under one node named ``name`` in the run's tree and progress."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"flyte.group(name): expected a non-empty string, got {name!r}")
    with _node(name, "group"):
        yield


def trace(func: F) -> F:
    """Record each call of ``func`` made inside a task as a node of the run's tree: its inputs, its output (as
    text, abbreviated) and its timing. Works on sync and async functions and generators. Outside a task, ``func``
    is called as is."""

    def describe(action: Action | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if action is not None:
            action.detail["inputs"] = _abbreviate(_bound(func, args, kwargs))

    def finish(action: Action | None, value: Any) -> None:
        if action is not None:
            action.detail["output"] = _abbreviate(value)

    if inspect.isasyncgenfunction(func):
        @functools.wraps(func)
        async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
            with _node(func.__qualname__, "trace") as action:
                describe(action, args, kwargs)
                count = 0
                async for item in func(*args, **kwargs):
                    count += 1
                    yield item
                finish(action, f"{count} items")
        return agen_wrapper  # type: ignore[return-value]

    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            with _node(func.__qualname__, "trace") as action:
                describe(action, args, kwargs)
                value = await func(*args, **kwargs)
                finish(action, value)
                return value
        return async_wrapper  # type: ignore[return-value]

    if inspect.isgeneratorfunction(func):
        @functools.wraps(func)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            with _node(func.__qualname__, "trace") as action:
                describe(action, args, kwargs)
                count = 0
                for item in func(*args, **kwargs):
                    count += 1
                    yield item
                finish(action, f"{count} items")
        return gen_wrapper  # type: ignore[return-value]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _node(func.__qualname__, "trace") as action:
            describe(action, args, kwargs)
            value = func(*args, **kwargs)
            finish(action, value)
            return value
    return wrapper  # type: ignore[return-value]


def _bound(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    try:
        return dict(inspect.signature(func).bind(*args, **kwargs).arguments)
    except (TypeError, ValueError):
        return {"args": args, **kwargs}


def _abbreviate(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a repr that fails must not fail the call
        text = f"<unprintable {type(value).__name__}: {exc}>"
    return text if len(text) <= _TEXT_LIMIT else text[:_TEXT_LIMIT - 1] + "…"


@contextlib.contextmanager
def custom_context(**context: str) -> Iterator[None]:
    """Within the block, ``flyte.get_custom_context()`` (here and in the task calls made here) also has these
    keys. Values are strings."""
    for key, value in context.items():
        if not isinstance(value, str):
            raise TypeError(f"flyte.custom_context({key}=...): values must be strings, got {type(value).__name__}")
    token = _custom.set({**get_custom_context(), **context})
    try:
        yield
    finally:
        _custom.reset(token)


def get_custom_context() -> dict[str, str]:
    """The custom context in effect: the run's (``with_runcontext(custom_context=...)``) with the enclosing
    ``flyte.custom_context`` blocks' keys on top. Empty outside a run."""
    layered = _custom.get()
    if layered is not None:
        return dict(layered)
    context = current_context.get()
    if context is None:
        return {}
    return dict(context.run.options.custom_context)
