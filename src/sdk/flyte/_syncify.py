"""flyte-sdk's calling convention for functions that have a blocking and an awaitable form: ``f(...)`` in sync code,
``await f.aio(...)`` in async code."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Generic, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class SyncAndAio(Generic[P, R]):
    """Wraps a function that does not block for long (writing a small file, reading a dict): ``.aio`` awaits the
    same call, so code written for flyte-sdk's ``.aio`` forms runs unchanged."""

    def __init__(self, func: Callable[P, R]) -> None:
        functools.update_wrapper(self, func)
        self._func = func

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._func(*args, **kwargs)

    async def aio(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<flyte function {self._func.__module__}.{self._func.__qualname__}>"


def sync_and_aio(func: Callable[P, R]) -> SyncAndAio[P, R]:
    return SyncAndAio(func)
