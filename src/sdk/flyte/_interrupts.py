"""Ctrl-C and SIGTERM during a run: stop it promptly, clean up, then let the interrupt reach the user.

``flyte.run`` from plain code owns the event loop it runs on. While it runs, the first SIGINT or SIGTERM cancels
the run (an anyio cancellation, so cleanup under shields works): engine work is interrupted, the actions are marked
aborted, engines are stopped and temp dirs removed; then ``KeyboardInterrupt`` (SIGINT) or ``SystemExit(143)``
(SIGTERM) is raised. A second signal while that cleanup runs raises ``KeyboardInterrupt`` at once; engines whose stop
is under way are still waited for at interpreter exit, so their temp dirs go too.

Where the calling thread already runs a loop (a notebook cell calling ``flyte.run``), the run goes on a loop in a
helper thread and the caller waits; an interrupt of that wait (the kernel's KeyboardInterrupt) cancels the run the
same way before it is re-raised.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

if TYPE_CHECKING:
    import asyncio  # imported where used: it costs a fifth of `import flyte`

T = TypeVar("T")

_HANDLED = (signal.SIGINT, signal.SIGTERM)
_CLEANUP_WAIT_S = 60.0  # a helper-thread run given this long to clean up after an interrupt of its caller


class Interruptible:
    """A run's loop and cancel scope, cancellable from a signal handler or another thread."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.scope: anyio.CancelScope | None = None
        self.reason: str | None = None  # "SIGINT", "SIGTERM", "KeyboardInterrupt" once interrupted

    async def run(self, func: Callable[..., Awaitable[T]], *args: Any) -> T | None:
        import asyncio

        self.loop = asyncio.get_running_loop()
        token = current_interrupt.set(self)
        try:
            with anyio.CancelScope() as scope:
                self.scope = scope
                if self.reason is not None:
                    scope.cancel()
                return await func(*args)
            return None  # cancelled: the caller raises the interrupt
        finally:
            current_interrupt.reset(token)

    def interrupt(self, reason: str) -> None:
        """Cancel the run (thread-safe; callable from a signal handler)."""
        if self.reason is None:
            self.reason = reason
        loop, scope = self.loop, self.scope
        if loop is not None and scope is not None:
            try:
                loop.call_soon_threadsafe(scope.cancel)
            except RuntimeError:  # the loop is closed: the run is over
                pass


async def keep_loop_awake(period: float = 0.2) -> None:
    """Wake the loop every ``period`` seconds until cancelled.

    A Jupyter kernel turns an interrupt into a cancellation of the cell's task from a callback that the signal
    handler queues without waking the loop (tornado's ``add_callback`` on the loop's own thread): a cell that only
    waits for other threads would never see it. A run awaited in a cell keeps the loop awake with this."""
    while True:  # noqa: ASYNC110 (waking the loop is the point)
        await anyio.sleep(period)


current_interrupt: ContextVar[Interruptible | None] = ContextVar("flyte_interrupt", default=None)


def interrupt_reason() -> str | None:
    """Why the current run is being cancelled, when an interrupt cancels it ("SIGINT", ...); None otherwise."""
    current = current_interrupt.get()
    return current.reason if current is not None else None


def run_owning_loop(func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``func(*args)`` on a new event loop in this thread; on the main thread, SIGINT and SIGTERM cancel it."""
    runner = Interruptible()
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        return anyio.run(func, *args)
    previous: dict[signal.Signals, Any] = {}

    def on_signal(signum: int, frame: Any) -> None:
        if runner.reason is not None:
            raise KeyboardInterrupt  # the second one: stop cleaning up
        runner.interrupt(signal.Signals(signum).name)

    for signum in _HANDLED:
        current = signal.getsignal(signum)
        if current in (signal.SIG_DFL, signal.default_int_handler):  # leave a program's own handlers alone
            previous[signum] = current
            signal.signal(signum, on_signal)
    try:
        result = anyio.run(runner.run, func, *args)
    except Exception as exc:
        if runner.reason is not None:  # an error raised while the run was being interrupted
            raise _interrupt_error(runner) from exc
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return _finish(runner, result)


def _interrupt_error(runner: Interruptible) -> BaseException:
    if runner.reason == "SIGTERM":
        return SystemExit(128 + signal.SIGTERM)
    return KeyboardInterrupt()


def _finish(runner: Interruptible, result: T | None) -> T:
    if runner.reason is not None:
        raise _interrupt_error(runner) from None
    return result  # type: ignore[return-value]


def run_in_helper_thread(func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``func(*args)`` on a fresh loop in a helper thread and wait (this thread's loop is busy: a notebook).
    A KeyboardInterrupt of the wait cancels the run, waits for its cleanup, and is then re-raised."""
    runner = Interruptible()
    box: dict[str, Any] = {}
    finished = threading.Event()  # not thread.is_alive(): an interrupted join() leaves the thread marked stopped

    def target() -> None:
        try:
            box["value"] = anyio.run(runner.run, func, *args)
        except BaseException as exc:
            box["error"] = exc
        finally:
            finished.set()

    thread = threading.Thread(target=target, name="flyte-run", daemon=True)
    thread.start()
    try:
        finished.wait()
    except KeyboardInterrupt:
        runner.interrupt("KeyboardInterrupt")
        try:
            finished.wait(_CLEANUP_WAIT_S)
        finally:
            raise KeyboardInterrupt from None
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]
