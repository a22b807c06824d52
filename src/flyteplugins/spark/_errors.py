"""Spark errors that stay readable after the session is gone.

pyspark's exceptions (``AnalysisException``, ``PythonException``, ``Py4JJavaError``...) build their message by asking
the JVM, each time they are printed. The engine stops when the run ends, before the caller prints the error, so such
an exception would fail with an ``AssertionError`` instead of saying what went wrong. Detaching computes the message
while the JVM is up and keeps it, under a subclass of the same type, so ``except AnalysisException`` still works.
"""

from __future__ import annotations

import sys
from typing import Any

_detached_types: dict[type, type] = {}


def _jvm_backed_types() -> tuple[type, ...]:
    types: list[type] = []
    captured = sys.modules.get("pyspark.errors.exceptions.captured")
    if captured is not None:
        types.append(captured.CapturedException)
    protocol = sys.modules.get("py4j.protocol")
    if protocol is not None:
        types.append(protocol.Py4JJavaError)
    return tuple(types)


def _detached_type(kind: type) -> type:
    detached = _detached_types.get(kind)
    if detached is None:
        def __str__(self: Any) -> str:
            return self._flyte_message  # type: ignore[no-any-return]

        def __repr__(self: Any) -> str:
            return f"{kind.__name__}({self._flyte_message!r})"

        detached = type(kind.__name__, (kind,), {"__str__": __str__, "__repr__": __repr__,
                                                 "__module__": kind.__module__,
                                                 "__qualname__": kind.__qualname__})
        _detached_types[kind] = detached
    return detached


def detach(error: BaseException) -> BaseException:
    """Make ``error`` (and the errors chained to it) printable without a JVM; returns ``error`` itself."""
    jvm_types = _jvm_backed_types()
    if not jvm_types:
        return error
    seen: set[int] = set()
    current: BaseException | None = error
    pending = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, jvm_types) and type(current) not in _detached_types.values():
            try:
                message = str(current)
            except Exception as exc:  # the JVM is already gone: say so rather than fail
                message = f"{type(current).__name__} (message unavailable: {exc!r})"
            try:
                current._flyte_message = message  # type: ignore[attr-defined]
                current.__class__ = _detached_type(type(current))
            except TypeError:
                pass
        pending.extend([current.__cause__, current.__context__])  # type: ignore[list-item]
    return error
