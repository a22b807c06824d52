"""Process-wide pool of running engines (a SparkSession, a local Ray instance, a Dask cluster).

Plugins never start or stop an engine directly: their ``pre`` calls :func:`acquire_engine` with a ``kind`` (one live
engine per kind in a process, since Spark and Ray are per-process singletons), a ``spec`` that says what the engine
must look like, and ``start``/``stop`` callables. The pool then:

- reuses the live engine when its spec equals the requested one and it is still alive (warm calls cost a dict
  lookup);
- otherwise waits until no call holds the engine, then changes it in place when the plugin says a live engine can
  take the new spec (``resizable``/``resize``: a Spark context in the same JVM, a Dask cluster scaled), else stops it
  and starts one to the new spec (an override resizes);
- releases the call's lease when the call ends however it ends (return, raise, timeout, cancellation): the controller
  calls :func:`release_call_leases` in a cancellation-shielded ``finally``;
- stops every engine a run used when that run ends, and whatever is left at interpreter exit.

State is guarded by a ``threading.Lock`` and waiting is by short sleeps, so one pool serves runs on any event loop
(``flyte.run`` from a notebook starts its own loop in a thread).
"""

from __future__ import annotations

import atexit
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

import anyio

from ._context import current_context
from ._threads import shielded

log = logging.getLogger("flyte.engines")
H = TypeVar("H")

_POLL_SECONDS = 0.02
_EXIT_STOP_WAIT_S = 30.0
_STRAGGLER_WAIT_S = 3.0


class _Engine:
    __slots__ = ("kind", "spec", "handle", "stop", "alive", "leases", "runs", "state")

    def __init__(self, kind: str, spec: Hashable) -> None:
        self.kind = kind
        self.spec = spec
        self.handle: Any = None
        self.stop: Callable[[Any], None] | None = None
        self.alive: Callable[[Any], bool] | None = None
        self.leases = 0
        self.runs: set[str] = set()
        self.state = "starting"  # starting -> ready (<-> resizing) -> stopping


class EngineLease:
    __slots__ = ("engine", "released")

    def __init__(self, engine: _Engine) -> None:
        self.engine = engine
        self.released = False


class EnginePool:
    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._engines: dict[str, _Engine] = {}
        self._stopping: set[threading.Thread] = set()

    def live(self, kind: str) -> tuple[Hashable, Any] | None:
        """``(spec, handle)`` of the ready engine of ``kind``, or None."""
        with self._mutex:
            engine = self._engines.get(kind)
            return (engine.spec, engine.handle) if engine and engine.state == "ready" else None

    async def acquire(self, kind: str, spec: Hashable, start: Callable[[], Awaitable[H]],
                      stop: Callable[[H], None], alive: Callable[[H], bool] | None = None,
                      resizable: Callable[[Hashable, Hashable], bool] | None = None,
                      resize: Callable[[H, Hashable], Awaitable[H]] | None = None) -> H:
        context = current_context.get()
        if context is None:
            raise RuntimeError("acquire_engine() is for a task template's pre(); no task is running")
        run_name = context.run.name
        while True:
            to_stop: _Engine | None = None
            to_resize: _Engine | None = None
            with self._mutex:
                engine = self._engines.get(kind)
                if engine is None:
                    engine = _Engine(kind, spec)
                    self._engines[kind] = engine
                    break  # this call starts it
                usable = engine.alive is None or engine.alive(engine.handle)
                if engine.state == "ready" and engine.spec == spec and usable:
                    engine.leases += 1
                    engine.runs.add(run_name)
                    context.leases.append(EngineLease(engine))
                    return engine.handle  # type: ignore[no-any-return]
                if engine.state == "ready" and engine.leases == 0:
                    if usable and resize is not None and resizable is not None and resizable(engine.spec, spec):
                        engine.state = "resizing"
                        to_resize = engine
                    else:
                        engine.state = "stopping"
                        to_stop = engine
                elif _held_by_ancestor(context, engine):
                    raise RuntimeError(
                        f"a task needs the {kind} engine with other settings while its caller "
                        f"{_holder_name(context, engine)} holds the running one: it cannot be restarted under its "
                        "caller. Call the two tasks one after the other from a task that uses no such engine."
                    )
            if to_resize is not None:
                assert resize is not None
                log.info("resizing the %s engine in place", kind)
                return await self._bring_up(to_resize, functools.partial(resize, to_resize.handle, spec), context,
                                            spec=spec)
            if to_stop is not None:
                log.info("restarting %s engine: spec changed", kind)
                await self._stop(to_stop)
                continue
            await anyio.sleep(_POLL_SECONDS)  # another call holds or is starting an engine of this kind

        return await self._bring_up(engine, start, context, stop=stop, alive=alive)

    async def _bring_up(self, engine: _Engine, make: Callable[[], Awaitable[H]], context: Any, **fields: Any) -> H:
        """Await ``make()`` (a start or a resize), then hand the ready engine to ``context`` with ``fields`` set.

        Not shielded: a task's timeout and Ctrl-C cover a cold start or a resize. One cancelled half-way cleans up
        after itself (plugins go through flyte.extend.run_blocking with an interrupt and a discard; a failed resize
        stops its engine), so on failure the pool only forgets the engine."""
        try:
            handle = await make()
        except BaseException:
            with self._mutex:
                if self._engines.get(engine.kind) is engine:
                    del self._engines[engine.kind]
            raise
        with self._mutex:
            for name, value in fields.items():
                setattr(engine, name, value)
            engine.handle = handle
            engine.state = "ready"
            engine.leases = 1
            engine.runs.add(context.run.name)
        context.leases.append(EngineLease(engine))
        return handle

    def release(self, lease: EngineLease) -> None:
        with self._mutex:
            if not lease.released:
                lease.released = True
                lease.engine.leases -= 1

    async def stop_for_run(self, run_name: str) -> None:
        """Stop the engines used by ``run_name`` that no other live run uses. Runs to its end even when the run
        is being cancelled (Ctrl-C, a notebook interrupt): that is when it matters most."""
        await shielded(self._stop_for_run, run_name)

    async def _stop_for_run(self, run_name: str) -> None:
        with self._mutex:
            for engine in self._engines.values():
                engine.runs.discard(run_name)
        # A lease still held here belongs to an interrupted body that outlived its grace (its engine work was
        # cancelled, so it ends soon): give it a moment rather than stopping the engine under it.
        deadline = time.monotonic() + _STRAGGLER_WAIT_S
        while True:
            with self._mutex:
                unused = [e for e in self._engines.values() if e.state == "ready" and not e.runs]
                if not any(e.leases for e in unused) or time.monotonic() >= deadline:
                    for engine in unused:
                        engine.state = "stopping"
                    break
            await anyio.sleep(_POLL_SECONDS)
        for engine in unused:
            await self._stop(engine)

    async def _stop(self, engine: _Engine) -> None:
        """Stop ``engine`` in a thread of its own and wait for it, even through a cancellation (Ctrl-C at run end
        must not leave a half-stopped engine and its temp dirs). A stop still running at interpreter exit (a second
        Ctrl-C) is waited for there."""
        stopper = threading.Thread(target=self._stop_now, args=(engine,), name=f"flyte-stop {engine.kind}",
                                   daemon=True)
        with self._mutex:
            self._stopping.add(stopper)
        stopper.start()
        await shielded(anyio.to_thread.run_sync, stopper.join)

    def _stop_now(self, engine: _Engine) -> None:
        try:
            if engine.stop is not None:
                engine.stop(engine.handle)
        except Exception:  # a failed stop must not mask the task's own outcome
            log.exception("stopping the %s engine failed", engine.kind)
        finally:
            with self._mutex:
                if self._engines.get(engine.kind) is engine:
                    del self._engines[engine.kind]
                self._stopping.discard(threading.current_thread())

    def stop_all_now(self) -> None:
        """Synchronous stop of every engine (interpreter exit), and the end of stops already under way."""
        with self._mutex:
            engines = [engine for engine in self._engines.values() if engine.state != "stopping"]
            for engine in engines:
                engine.state = "stopping"
            in_flight = list(self._stopping)
        for engine in engines:
            self._stop_now(engine)
        for stopper in in_flight:
            stopper.join(_EXIT_STOP_WAIT_S)
            if stopper.is_alive():
                log.error("an engine stop (%s) did not finish within %ss at exit", stopper.name, _EXIT_STOP_WAIT_S)


def _ancestors(context: Any):  # type: ignore[no-untyped-def]
    parent = context.parent
    while parent is not None:
        yield parent
        parent = parent.parent


def _held_by_ancestor(context: Any, engine: _Engine) -> bool:
    return any(lease.engine is engine and not lease.released for a in _ancestors(context) for lease in a.leases)


def _holder_name(context: Any, engine: _Engine) -> str:
    for ancestor in _ancestors(context):
        if any(lease.engine is engine and not lease.released for lease in ancestor.leases):
            return f"{ancestor.task_name} ({ancestor.action_name})"
    return "?"


pool = EnginePool()
atexit.register(pool.stop_all_now)


async def acquire_engine(kind: str, spec: Hashable, start: Callable[[], Awaitable[H]], stop: Callable[[H], None],
                         alive: Callable[[H], bool] | None = None,
                         resizable: Callable[[Hashable, Hashable], bool] | None = None,
                         resize: Callable[[H, Hashable], Awaitable[H]] | None = None) -> H:
    """Lease the process's ``kind`` engine, (re)starting it to ``spec`` when needed. See the module docstring.

    ``alive(handle)``, when given, is asked before a live engine is reused: an engine that died or was stopped by
    user code (``spark.stop()``) is replaced rather than handed out again.

    ``resizable(live_spec, spec)`` says whether the live engine, unused at that moment, can be changed to ``spec``
    without a restart; if so ``resize(handle, spec)`` is awaited instead of stop + start and returns the handle to
    use from then on (the same object or a new one). A resize that raises or is cancelled must leave nothing
    running: it stops the engine itself.

    ``start`` is awaited (put blocking work in ``anyio.to_thread.run_sync``); ``stop`` is a plain callable, run in a
    worker thread, or directly at interpreter exit. The lease ends with the calling task; the engine lives on for
    later compatible calls of the same run and is stopped when the run ends.
    """
    return await pool.acquire(kind, spec, start, stop, alive, resizable, resize)


def live_engine(kind: str) -> tuple[Hashable, Any] | None:
    """``(spec, handle)`` of the live engine of ``kind`` in this process, or None."""
    return pool.live(kind)


def release_call_leases(leases: list[EngineLease]) -> None:
    for lease in leases:
        pool.release(lease)
    leases.clear()
