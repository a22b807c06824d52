"""``flyte.map``: call a task over iterables, concurrently, results in input order."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import anyio

from ._context import current_context
from ._grouping import group


async def _map_all(func: Any, iterables: tuple[Iterable[Any], ...], concurrency: int,
                   return_exceptions: bool, group_name: str | None, parent: Any = None) -> list[Any]:
    if parent is not None:  # called from a sync task's worker thread: keep the caller as the parent action
        current_context.set(parent)
    task, fixed_args, fixed_kwargs = _unpartial(func)
    calls = list(zip(*iterables, strict=False))  # like zip(): stops at the shortest iterable
    results: list[Any] = [None] * len(calls)
    limiter = anyio.CapacityLimiter(concurrency) if concurrency > 0 else None

    async def one(index: int, args: tuple[Any, ...]) -> None:
        try:
            if limiter is None:
                results[index] = await task.aio(*fixed_args, *args, **fixed_kwargs)
            else:
                async with limiter:
                    results[index] = await task.aio(*fixed_args, *args, **fixed_kwargs)
        except Exception as exc:
            if not return_exceptions:
                raise
            results[index] = exc

    # As flyte-sdk does, the calls hang under one group node: "<task>_<group_name or 'map'>".
    with group(f"{task.short_name}_{group_name or 'map'}"):
        async with anyio.create_task_group() as tasks:
            for index, args in enumerate(calls):
                tasks.start_soon(one, index, args)
    return results


def _unpartial(func: Any) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """``functools.partial(task, ...)`` -> (task, its fixed args, its fixed keywords)."""
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    while isinstance(func, functools.partial):
        args = func.args + args
        kwargs = {**func.keywords, **kwargs}
        func = func.func
    if not hasattr(func, "aio"):
        raise TypeError(f"flyte.map: expected a task or functools.partial of a task, got {type(func).__name__}")
    return func, args, kwargs


class _Map:
    def __call__(self, task: Any, *iterables: Iterable[Any], group_name: str | None = None, concurrency: int = 0,
                 return_exceptions: bool = True) -> Iterator[Any]:
        """Call ``task`` (or a ``functools.partial`` of it) once per item, zipping several iterables, at most
        ``concurrency`` at a time (0: no limit), and yield results in input order. The calls hang under one group
        node of the run's tree (``group_name``). As in flyte-sdk, a failed call yields its exception
        (``return_exceptions=True``, the default); with False the first failure is raised."""
        _check(concurrency)
        from ._runner import call_sync
        from ._task import _loop_running, _worker_thread

        if _loop_running():
            raise RuntimeError("flyte.map() would block this event loop; use `async for x in flyte.map.aio(...)`")
        token = getattr(_worker_thread, "token", None)
        if token is not None:
            return iter(anyio.from_thread.run(_map_all, task, iterables, concurrency, return_exceptions, group_name,
                                              current_context.get(), token=token))
        return iter(call_sync(_map_all, task, iterables, concurrency, return_exceptions, group_name))

    async def aio(self, task: Any, *iterables: Iterable[Any], group_name: str | None = None, concurrency: int = 0,
                  return_exceptions: bool = True) -> AsyncIterator[Any]:
        """Async form of :func:`flyte.map`."""
        _check(concurrency)
        for result in await _map_all(task, iterables, concurrency, return_exceptions, group_name):
            yield result


def _check(concurrency: int) -> None:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 0:
        raise ValueError(f"flyte.map: concurrency must be an int >= 0 (0 = unlimited), got {concurrency!r}")


map = _Map()
