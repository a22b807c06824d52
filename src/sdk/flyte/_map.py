"""``flyte.map``: call a task over iterables, concurrently, results in input order."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import anyio

from ._context import current_context


async def _map_all(task: Any, iterables: tuple[Iterable[Any], ...], concurrency: int,
                   return_exceptions: bool, parent: Any = None) -> list[Any]:
    if parent is not None:  # called from a sync task's worker thread: keep the caller as the parent action
        current_context.set(parent)
    calls = list(zip(*iterables, strict=False))  # like zip(): stops at the shortest iterable
    results: list[Any] = [None] * len(calls)
    limiter = anyio.CapacityLimiter(concurrency) if concurrency > 0 else None

    async def one(index: int, args: tuple[Any, ...]) -> None:
        try:
            if limiter is None:
                results[index] = await task.aio(*args)
            else:
                async with limiter:
                    results[index] = await task.aio(*args)
        except Exception as exc:
            if not return_exceptions:
                raise
            results[index] = exc

    async with anyio.create_task_group() as group:
        for index, args in enumerate(calls):
            group.start_soon(one, index, args)
    return results


class _Map:
    def __call__(self, task: Any, *iterables: Iterable[Any], concurrency: int = 0,
                 return_exceptions: bool = False) -> Iterator[Any]:
        """Call ``task`` once per item (zipping several iterables), at most ``concurrency`` at a time (0: no limit),
        and yield results in input order. With ``return_exceptions=True`` a failed call yields its exception."""
        _check(concurrency)
        from ._runner import call_sync
        from ._task import _loop_running, _worker_thread

        if _loop_running():
            raise RuntimeError("flyte.map() would block this event loop; use `async for x in flyte.map.aio(...)`")
        token = getattr(_worker_thread, "token", None)
        if token is not None:
            return iter(anyio.from_thread.run(_map_all, task, iterables, concurrency, return_exceptions,
                                              current_context.get(), token=token))
        return iter(call_sync(_map_all, task, iterables, concurrency, return_exceptions))

    async def aio(self, task: Any, *iterables: Iterable[Any], concurrency: int = 0,
                  return_exceptions: bool = False) -> AsyncIterator[Any]:
        """Async form of :func:`flyte.map`."""
        _check(concurrency)
        for result in await _map_all(task, iterables, concurrency, return_exceptions):
            yield result


def _check(concurrency: int) -> None:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 0:
        raise ValueError(f"flyte.map: concurrency must be an int >= 0 (0 = unlimited), got {concurrency!r}")


map = _Map()
