"""Blocking work off the event loop, stoppable on time.

Engines block: a Spark action, ``ray.get``, a Dask ``gather`` or a JVM start hold their thread until they finish, and
Python cannot stop a thread from outside. So blocking work runs in a daemon thread of its own and the caller's loop
only waits for it. When the caller is cancelled (a timeout, Ctrl-C, a failing sibling) the waiting ends at once:

1. ``interrupt()`` asks the engine to stop what the thread is blocked in (cancel a Spark job tag, Dask futures, Ray
   tasks; kill a half-started JVM), which makes the blocking call raise;
2. the caller waits at most ``grace`` seconds for the thread to finish, then lets the cancellation go on and leaves
   the thread behind (a daemon: it cannot hold up interpreter exit);
3. a result the thread produces after that is handed to ``discard`` (stop the engine it started), so nothing leaks.

Cleanup that must finish although the caller was cancelled (stopping an engine at run end) goes through
:func:`shielded`, which also outlasts a native ``Task.cancel()`` (``asyncio.wait_for``, a notebook interrupt), not
only anyio's cancellation.
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

if TYPE_CHECKING:
    import asyncio  # imported where used: it costs a fifth of `import flyte`

log = logging.getLogger("flyte.threads")
T = TypeVar("T")

INTERRUPT_GRACE_S = 1.5
"""How long a cancelled caller waits for interrupted blocking work before leaving its thread behind. With it a task
exceeds its ``timeout`` by at most this, plus its plugin's release."""


_EXIT_WAIT_S = 30.0
_EXIT_WAIT_INTERRUPTED_S = 2.0
# Abandoned calls whose late result still has to be discarded, with the interrupt that was used on them.
_unfinished: dict[threading.Thread, Callable[[], None] | None] = {}


@atexit.register
def _finish_abandoned() -> None:
    """At interpreter exit, let abandoned engine starts end and be discarded (stopped), so that nothing they
    started outlives the program. One that was interrupted (its processes killed) may be stuck waiting for them:
    it is interrupted once more (a process it started since) and given a short while. Registered before the engine
    pool's exit hook, so it runs after it."""
    deadline = time.monotonic() + _EXIT_WAIT_S
    for thread, interrupt in list(_unfinished.items()):
        limit = max(0.0, deadline - time.monotonic())
        if interrupt is not None:
            try:
                interrupt()
            except Exception:
                log.debug("interrupting %s at exit failed", thread.name, exc_info=True)
            limit = min(limit, _EXIT_WAIT_INTERRUPTED_S)
        thread.join(limit)


class BlockingCall:
    """One piece of blocking work in its own daemon thread; see the module docstring."""

    def __init__(self, func: Callable[..., Any], args: tuple[Any, ...], *, name: str,
                 discard: Callable[[Any], None] | None = None) -> None:
        self._func = func
        self._args = args
        self._discard = discard
        self._lock = threading.Lock()
        self._abandoned = False
        self._outcome: tuple[bool, Any] | None = None  # (ok, value or exception)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finished: asyncio.Future[None] | None = None
        self._when_done: list[Callable[[], None]] = []
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def when_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (in the call's thread) once the work has ended; at once if it already has."""
        with self._lock:
            if self._outcome is None:
                self._when_done.append(callback)
                return
        callback()

    def _run(self) -> None:
        try:
            outcome: tuple[bool, Any] = (True, self._func(*self._args))
        except BaseException as exc:  # handed to the caller as it is
            outcome = (False, exc)
        with self._lock:
            self._outcome = outcome
            late = self._abandoned
            callbacks, self._when_done = self._when_done, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("a completion callback of %s failed", self.thread.name)
        if late:
            try:
                if outcome[0] and self._discard is not None:
                    self._discard(outcome[1])
            except Exception:
                log.exception("discarding the late result of %s failed", self.thread.name)
            finally:
                _unfinished.pop(self.thread, None)
            return
        try:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the caller's loop is closed: nobody waits any more
            pass

    def _wake(self) -> None:
        if self._finished is not None and not self._finished.done():
            self._finished.set_result(None)

    def result(self) -> Any:
        assert self._outcome is not None
        ok, value = self._outcome
        if ok:
            return value
        raise value

    def _abandon(self, interrupt: Callable[[], None] | None) -> None:
        """The caller gave up waiting: a result that comes later goes to ``discard``."""
        with self._lock:
            if self._outcome is None:
                self._abandoned = True
                if self._discard is not None:
                    _unfinished[self.thread] = interrupt  # its result must still be discarded, at exit at the latest
                return
        if self._outcome[0] and self._discard is not None:
            # It finished just as the caller gave up: discard off the loop (an engine stop blocks), and at exit
            # at the latest.
            discard, value = self._discard, self._outcome[1]

            def run_discard() -> None:
                try:
                    discard(value)
                except Exception:
                    log.exception("discarding the result of %s failed", self.thread.name)
                finally:
                    _unfinished.pop(threading.current_thread(), None)

            discarder = threading.Thread(target=run_discard, name=f"{self.thread.name} discard", daemon=True)
            _unfinished[discarder] = None
            discarder.start()

    async def _wait_finished(self, limit: float | None) -> None:
        import asyncio

        assert self._finished is not None
        with anyio.move_on_after(limit):
            await asyncio.shield(self._finished)

    async def wait(self, interrupt: Callable[[], None] | None, grace: float,
                   on_abandon: Callable[[BlockingCall], None] | None = None) -> Any:
        import asyncio

        self._loop = asyncio.get_running_loop()
        self._finished = self._loop.create_future()
        self.thread.start()
        try:
            await asyncio.shield(self._finished)
        except BaseException:
            # Cancelled: stop the work, give it a moment to end cleanly, then leave it.
            try:
                if interrupt is not None:
                    try:
                        await shielded(anyio.to_thread.run_sync, interrupt)
                    except Exception:
                        log.debug("interrupting %s failed", self.thread.name, exc_info=True)
                if grace > 0:
                    await shielded(self._wait_finished, grace)
            finally:
                self._abandon(interrupt)
                if on_abandon is not None and self._outcome is None:
                    on_abandon(self)
            raise
        return self.result()


async def run_blocking(func: Callable[..., T], *args: Any, interrupt: Callable[[], None] | None = None,
                       discard: Callable[[T], None] | None = None, grace: float = INTERRUPT_GRACE_S,
                       name: str | None = None) -> T:
    """``func(*args)`` in a daemon thread (with the caller's context variables), awaited without blocking the loop.

    On cancellation ``interrupt()`` (run in a worker thread) should make ``func`` return or raise soon; the caller
    waits for that at most ``grace`` seconds, then the cancellation continues. A value ``func`` returns after the
    caller has gone is passed to ``discard`` (e.g. stop an engine whose start was abandoned).
    """
    context = contextvars.copy_context()
    call = BlockingCall(context.run, (func, *args), name=name or f"flyte-blocking {getattr(func, '__name__', func)}",
                        discard=discard)  # type: ignore[arg-type]
    return await call.wait(interrupt, grace)  # type: ignore[no-any-return]


async def run_on_own_loop(make_coroutine: Callable[[], Coroutine[Any, Any, T]], *,
                          interrupt: Callable[[], None] | None = None, grace: float = INTERRUPT_GRACE_S,
                          on_abandon: Callable[[BlockingCall], None] | None = None, name: str) -> T:
    """Run a coroutine on a fresh event loop in a daemon thread, so that blocking calls inside it never stall the
    caller's loop. Cancelling the caller runs ``interrupt()``, cancels the coroutine on its loop, and waits at most
    ``grace`` seconds for it to finish (see :func:`run_blocking`); if it is still running then, ``on_abandon``
    gets the call (to keep what it uses until ``call.when_done``)."""
    import asyncio

    context = contextvars.copy_context()
    box: dict[str, Any] = {}
    cancelled = threading.Event()

    def run_loop() -> T:
        loop = asyncio.new_event_loop()
        try:
            main = context.run(loop.create_task, make_coroutine())
            box["cancel"] = lambda: loop.call_soon_threadsafe(main.cancel)
            if cancelled.is_set():
                main.cancel()
            return loop.run_until_complete(main)
        finally:
            try:
                _cancel_leftovers(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def stop() -> None:
        cancelled.set()
        if interrupt is not None:
            interrupt()
        cancel = box.get("cancel")
        if cancel is not None:
            try:
                cancel()
            except RuntimeError:  # the loop closed meanwhile: nothing left to cancel
                pass

    call = BlockingCall(run_loop, (), name=name)
    return await call.wait(stop, grace, on_abandon)  # type: ignore[no-any-return]


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    import asyncio

    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


async def shielded(func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Await ``func(*args)`` to its end even if the caller is cancelled meanwhile, by anyio or natively
    (``Task.cancel()``), then let the cancellation continue."""
    import asyncio

    inner = asyncio.ensure_future(func(*args))
    cancellation: BaseException | None = None
    with anyio.CancelScope(shield=True):
        while not inner.done():
            try:
                await asyncio.shield(inner)
            except asyncio.CancelledError as exc:
                if inner.done():
                    break
                cancellation = exc
    if cancellation is not None:
        if not inner.cancelled() and inner.exception() is not None:
            log.debug("shielded cleanup failed", exc_info=inner.exception())
        raise cancellation
    return inner.result()
