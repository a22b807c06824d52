"""The plugin contract: a config + template defined here, the registry, override, the reusable rule, release."""

from __future__ import annotations

import asyncio
import time

import anyio
import msgspec
import pytest

import flyte
from flyte.errors import PluginNotFoundError, TaskTimeoutError
from flyte.extend import AsyncFunctionTaskTemplate, TaskPluginRegistry, acquire_engine, live_engine

EVENTS: list[tuple[str, object]] = []


class Counter(msgspec.Struct, frozen=True, kw_only=True):
    """A toy plugin config: the 'engine' is a dict with a size."""

    size: int = 1


class BigCounter(Counter, frozen=True, kw_only=True):
    """A subclass with no registration of its own: found through the MRO."""


class CounterTask(AsyncFunctionTaskTemplate):
    task_type = "counter"

    async def pre(self, *args, **kwargs) -> dict:
        EVENTS.append(("pre", self.plugin_config.size))
        return {"engine": {"size": self.plugin_config.size}}

    async def post(self, return_value):
        EVENTS.append(("post", return_value))
        return return_value

    async def release(self, data, error) -> None:
        EVENTS.append(("release", type(error).__name__ if error else None))


class ReusableCounterTask(CounterTask):
    supports_reuse = True


class Reusable(msgspec.Struct, frozen=True):
    pass


class Unregistered(msgspec.Struct, frozen=True):
    pass


TaskPluginRegistry.register(Counter, CounterTask)
TaskPluginRegistry.register(Reusable, ReusableCounterTask)

counter_env = flyte.TaskEnvironment(name="counter", plugin_config=Counter(size=2))


@counter_env.task
async def engine_size() -> int:
    return flyte.ctx().data["engine"]["size"]


@counter_env.task
async def boom() -> int:
    raise KeyError("boom")


@counter_env.task(timeout=0.5)
async def hangs() -> int:
    await asyncio.sleep(60)
    return 0


@counter_env.task
async def waits_forever() -> int:
    EVENTS.append(("started", None))
    await asyncio.sleep(60)
    return 0


@pytest.fixture(autouse=True)
def _clear_events():
    EVENTS.clear()


def test_registry_find_walks_the_mro():
    assert TaskPluginRegistry.find(Counter) is CounterTask
    assert TaskPluginRegistry.find(BigCounter) is CounterTask
    assert TaskPluginRegistry.find(Unregistered) is None
    e = flyte.TaskEnvironment(name="big", plugin_config=BigCounter(size=5))

    @e.task
    async def f() -> int:
        return flyte.ctx().data["engine"]["size"]

    assert isinstance(f, CounterTask)
    assert flyte.run(f).outputs()[0] == 5


def test_unregistered_config_names_the_type_and_registered_ones():
    with pytest.raises(PluginNotFoundError) as info:
        flyte.TaskEnvironment(name="x", plugin_config=Unregistered())
    message = str(info.value)
    assert "test_core_plugins.Unregistered" in message and "test_core_plugins.Counter" in message
    with pytest.raises(PluginNotFoundError, match="Unregistered"):
        engine_size.override(plugin_config=Unregistered())


def test_register_rejects_non_templates():
    with pytest.raises(TypeError, match="TaskTemplate"):
        TaskPluginRegistry.register(Unregistered, dict)


def test_pre_data_is_seen_and_release_runs_on_success():
    assert flyte.run(engine_size).outputs()[0] == 2
    assert EVENTS == [("pre", 2), ("post", 2), ("release", None)]


def test_implicit_run_runs_the_hooks():
    assert asyncio.run(engine_size()) == 2
    assert [e[0] for e in EVENTS] == ["pre", "post", "release"]


def test_release_runs_on_exception():
    with pytest.raises(KeyError):
        flyte.run(boom)
    assert EVENTS == [("pre", 2), ("release", "KeyError")]


def test_release_runs_on_timeout_and_the_timeout_is_enforced():
    start = time.monotonic()
    with pytest.raises(TaskTimeoutError, match=r"counter.hangs .* timeout of 0.5s"):
        flyte.run(hangs)
    assert time.monotonic() - start < 5  # the body would sleep 60 s
    assert EVENTS == [("pre", 2), ("release", "CancelledError")]


async def test_release_runs_on_cancellation():
    with anyio.move_on_after(0.3):
        await flyte.run.aio(waits_forever)
    assert EVENTS == [("pre", 2), ("started", None), ("release", "CancelledError")]


def test_override_returns_a_new_task_and_keeps_the_original():
    bigger = engine_size.override(plugin_config=Counter(size=8), retries=0, env_vars={}, short_name="big")
    assert bigger is not engine_size
    assert flyte.run(bigger).outputs()[0] == 8
    assert flyte.run(engine_size).outputs()[0] == 2
    assert bigger.settings.retries.count == 0 and bigger.settings.env_vars == {}
    assert bigger.short_name == "big" and engine_size.short_name == "engine_size"


def test_override_honours_explicit_falsy_values():
    e = flyte.TaskEnvironment(name="falsy", env_vars={"A": "1"})

    @e.task(retries=3, timeout=10)
    async def f() -> int:
        return 1

    g = f.override(retries=0, env_vars={}, timeout=None)
    assert (g.settings.retries.count, g.settings.env_vars, g.settings.timeout) == (0, {}, None)
    assert (f.settings.retries.count, f.settings.env_vars, f.settings.timeout.seconds) == (3, {"A": "1"}, 10)


def test_override_to_another_plugin_rebuilds_the_template():
    plain = flyte.TaskEnvironment(name="plain")

    @plain.task
    async def f() -> int:
        data = flyte.ctx().data
        return data["engine"]["size"] if "engine" in data else -1

    assert type(f) is AsyncFunctionTaskTemplate
    assert flyte.run(f).outputs()[0] == -1
    g = f.override(plugin_config=Counter(size=3))
    assert type(g) is CounterTask and flyte.run(g).outputs()[0] == 3
    h = g.override(plugin_config=None)
    assert type(h) is AsyncFunctionTaskTemplate


def test_override_rejects_unknown_settings():
    with pytest.raises(TypeError, match="unknown setting"):
        engine_size.override(colour="red")


def test_reusable_rule_on_environment_and_override():
    with pytest.raises(ValueError, match="does not support reuse"):
        flyte.TaskEnvironment(name="r", plugin_config=Counter(), reusable=flyte.ReusePolicy(replicas=2))
    e = flyte.TaskEnvironment(name="r2", reusable=flyte.ReusePolicy(replicas=2))

    @e.task
    async def f() -> int:
        return 1

    with pytest.raises(ValueError, match="does not support reuse"):
        f.override(plugin_config=Counter())
    with pytest.raises(ValueError, match="does not support reuse"):
        engine_size.override(reusable=flyte.ReusePolicy(replicas=1))
    assert isinstance(f.override(plugin_config=Reusable()), ReusableCounterTask)
    ok = flyte.TaskEnvironment(name="r3", plugin_config=Reusable(), reusable=flyte.ReusePolicy())
    assert ok.template_class is ReusableCounterTask


@counter_env.task
async def driver_with_override() -> list[int]:
    first = await engine_size()
    second = await engine_size.override(plugin_config=Counter(size=9))()
    return [first, second]


def test_override_from_inside_a_task():
    assert flyte.run(driver_with_override).outputs()[0] == [2, 9]


# -- the engine pool ---------------------------------------------------------------------------------------------

STARTS: list[int] = []
STOPS: list[int] = []


class Pooled(msgspec.Struct, frozen=True, kw_only=True):
    size: int = 1


class PooledTask(AsyncFunctionTaskTemplate):
    async def pre(self, *args, **kwargs) -> dict:
        size = self.plugin_config.size

        async def start():
            await anyio.sleep(0.05)
            STARTS.append(size)
            return {"size": size}

        def stop(handle):
            STOPS.append(handle["size"])

        return {"engine": await acquire_engine("toy", size, start, stop)}


TaskPluginRegistry.register(Pooled, PooledTask)
pooled_env = flyte.TaskEnvironment(name="pooled", plugin_config=Pooled(size=1))


@pooled_env.task
async def pooled_size() -> int:
    return flyte.ctx().data["engine"]["size"]


@pooled_env.task(timeout=0.3)
async def pooled_hang() -> int:
    await asyncio.sleep(60)
    return 0


@flyte.TaskEnvironment(name="pool_driver").task
async def pool_driver() -> list[int]:
    sizes = [await pooled_size(), await pooled_size()]
    sizes += await asyncio.gather(pooled_size(), pooled_size())
    sizes.append(await pooled_size.override(plugin_config=Pooled(size=3))())
    sizes += await asyncio.gather(pooled_size(), pooled_size.override(plugin_config=Pooled(size=2))())
    try:
        await pooled_hang()
    except TimeoutError:
        pass
    sizes.append(await pooled_size())  # the timed-out call's lease was released
    return sizes


def test_engine_pool_reuses_resizes_and_stops_at_run_end():
    STARTS.clear()
    STOPS.clear()
    sizes = flyte.run(pool_driver).outputs()[0]
    assert sizes == [1, 1, 1, 1, 3, 1, 2, 1]
    # Started once for the first four calls, then once per change of size; all stopped by the end of the run.
    assert STARTS[:2] == [1, 3]
    assert len(STARTS) == len(STOPS)
    assert sorted(STARTS) == sorted(STOPS)
    assert live_engine("toy") is None


@pooled_env.task
async def pooled_parent_resizes_under_itself() -> int:
    return await pooled_size.override(plugin_config=Pooled(size=5))()


def test_a_child_cannot_restart_the_engine_its_caller_holds():
    """Waiting would deadlock (the caller's lease ends only after the child): it is an error that says why."""
    with pytest.raises(RuntimeError, match=r"toy engine with other settings while its caller "
                                           r"pooled.pooled_parent_resizes_under_itself \(a1\) holds"):
        flyte.run(pooled_parent_resizes_under_itself)
    assert live_engine("toy") is None


class Mortal(msgspec.Struct, frozen=True):
    pass


class MortalTask(AsyncFunctionTaskTemplate):
    async def pre(self, *args, **kwargs) -> dict:
        async def start():
            STARTS.append(len(STARTS))
            return {"alive": True, "id": len(STARTS)}

        handle = await acquire_engine("mortal", "same-spec", start, lambda h: STOPS.append(h["id"]),
                                      alive=lambda h: h["alive"])
        return {"engine": handle}


TaskPluginRegistry.register(Mortal, MortalTask)
mortal_env = flyte.TaskEnvironment(name="mortal", plugin_config=Mortal())


@mortal_env.task
async def engine_id(kill: bool) -> int:
    engine = flyte.ctx().data["engine"]
    if kill:
        engine["alive"] = False  # as user code calling spark.stop() does
    return engine["id"]


@flyte.TaskEnvironment(name="mortal_driver").task
async def mortal_driver() -> list[int]:
    return [await engine_id(False), await engine_id(True), await engine_id(False), await engine_id(False)]


def test_a_dead_engine_is_replaced_not_reused():
    STARTS.clear()
    STOPS.clear()
    assert flyte.run(mortal_driver).outputs()[0] == [1, 1, 2, 2]
    assert len(STARTS) == 2 and sorted(STOPS) == [1, 2]


class Scalable(msgspec.Struct, frozen=True, kw_only=True):
    """A toy engine that can change its size in place, but not its family."""

    size: int = 1
    family: str = "a"
    resize_fails: bool = False
    resize_hangs: bool = False


RESIZES: list[tuple[int, int]] = []


class ScalableTask(AsyncFunctionTaskTemplate):
    task_type = "scalable"

    async def pre(self, *args, **kwargs) -> dict:
        config = self.plugin_config

        async def start():
            STARTS.append(config.size)
            return {"size": config.size, "family": config.family}

        def stop(handle):
            STOPS.append(handle["size"])

        async def resize(handle, spec):
            RESIZES.append((handle["size"], spec[0]))
            try:
                if config.resize_fails:
                    raise RuntimeError("the engine refused the new size")
                if config.resize_hangs:
                    await asyncio.sleep(60)
            except BaseException:
                stop(handle)  # the contract: a failed or cancelled resize takes its engine down
                raise
            return {**handle, "size": spec[0]}

        handle = await acquire_engine("scalable", (config.size, config.family), start, stop,
                                      resizable=lambda live, wanted: live[1] == wanted[1], resize=resize)
        return {"engine": dict(handle)}


TaskPluginRegistry.register(Scalable, ScalableTask)
scalable_env = flyte.TaskEnvironment(name="scalable", plugin_config=Scalable())


@scalable_env.task
async def scalable_size() -> int:
    return flyte.ctx().data["engine"]["size"]


@flyte.TaskEnvironment(name="scalable_driver").task
async def scalable_driver() -> list:
    def sized(**fields):
        return scalable_size.override(plugin_config=Scalable(**fields))

    seen: list = [await scalable_size(), await sized(size=3)(), await sized(size=2)()]
    seen.append(await sized(size=2, family="b")())  # another family: a restart
    try:
        await sized(size=4, family="b", resize_fails=True)()
    except RuntimeError as exc:
        seen.append(str(exc))
    seen.append(await sized(size=4, family="b")())  # the failed engine is gone: a cold start
    try:
        await sized(size=5, family="b", resize_hangs=True).override(timeout=0.3)()
    except TimeoutError:
        seen.append("timed out")
    seen.append(await sized(size=6, family="b")())  # the abandoned resize's engine is gone too: a cold start
    return seen


def test_an_engine_is_resized_in_place_when_the_plugin_can():
    STARTS.clear()
    STOPS.clear()
    RESIZES.clear()
    assert flyte.run(scalable_driver).outputs()[0] == [1, 3, 2, 2, "the engine refused the new size", 4, "timed out", 6]
    assert RESIZES == [(1, 3), (3, 2), (2, 4), (4, 5)]
    assert STARTS == [1, 2, 4, 6]
    # family a stopped for family b; the failed and the timed-out resizes stopped theirs; the last one at run end.
    assert STOPS == [2, 2, 4, 6]
    assert live_engine("scalable") is None
