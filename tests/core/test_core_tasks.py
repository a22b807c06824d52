"""Environments, tasks, nested calls, sync/async, runs, contexts, encoding."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import traceback

import pytest

import flyte
from flyte.errors import EncodingError

env = flyte.TaskEnvironment(name="core")


@env.task
async def square(x: int) -> int:
    return x * x


@env.task
async def fan_out(n: int) -> int:
    return sum(await asyncio.gather(*[square(i) for i in range(n)]))


@env.task
def sync_square(x: int) -> int:
    time.sleep(0.2)
    return x * x


@env.task
async def sync_child_does_not_block(x: int) -> list[str]:
    events: list[str] = []

    async def ticker() -> None:
        for _ in range(3):
            events.append("tick")
            await asyncio.sleep(0.02)

    result, _ = await asyncio.gather(sync_square(x), ticker())
    events.append(f"result={result}")
    return events


def test_task_names_and_kinds():
    assert square.name == "core.square"
    assert sync_square.name == "core.sync_square"
    assert square.is_async and not sync_square.is_async
    assert square.short_name == "square"


def test_task_decorator_with_arguments():
    e = flyte.TaskEnvironment(name="decorated")

    @e.task(short_name="sq", retries=2, timeout=30, cache="auto", report=True, docs="squares")
    async def f(x: int) -> int:
        return x

    assert f.short_name == "sq"
    assert f.settings.retries.count == 2
    assert f.settings.timeout.seconds == 30
    assert f.settings.cache.behavior == "auto"
    assert f.settings.docs == "squares"
    assert e.tasks == {"decorated.f": f}


def test_run_sync_returns_run_with_outputs_and_tree():
    run = flyte.run(fan_out, n=10)
    assert run.outputs()[0] == sum(i * i for i in range(10))
    assert run.status == "succeeded"
    (root,) = run.actions
    assert root.task_name == "core.fan_out"
    assert len(root.children) == 10
    assert {child.task_name for child in root.children} == {"core.square"}
    assert len({child.name for child in root.walk()}) == 11  # every action has its own id
    assert all(child.status == "succeeded" and child.duration >= 0 for child in root.children)
    assert root.duration >= max(child.duration for child in root.children)


def test_thousand_children_via_gather():
    assert flyte.run(fan_out, n=1000).outputs()[0] == sum(i * i for i in range(1000))


async def test_run_aio_and_direct_await():
    run = await flyte.run.aio(fan_out, n=5)
    assert run.outputs()[0] == 30
    assert await square(7) == 49  # implicit run


def test_sync_task_called_directly_outside_any_run():
    assert sync_square(3) == 9


def test_sync_task_inside_async_runs_in_a_worker_thread():
    events = flyte.run(sync_child_does_not_block, x=4).outputs()[0]
    # The ticker ran while the sync body slept: the loop was free.
    assert events[:3] == ["tick", "tick", "tick"]
    assert events[-1] == "result=16"


def test_sync_run_inside_a_running_event_loop():
    async def notebook_cell() -> int:
        # As in Jupyter: a sync flyte.run while this thread's loop is running.
        return flyte.run(fan_out, n=3).outputs()[0]

    assert asyncio.run(notebook_cell()) == 5


@env.task
def sync_parent(n: int) -> int:
    return sum(sync_leaf(i) for i in range(n))


@env.task
def sync_leaf(x: int) -> int:
    return x + 1


def test_sync_task_calls_sync_tasks():
    run = flyte.run(sync_parent, n=4)
    assert run.outputs()[0] == 10
    assert [c.task_name for c in run.actions[0].children] == ["core.sync_leaf"] * 4


@env.task
async def context_probe(tag: str) -> dict:
    await asyncio.sleep(0.01)
    context = flyte.ctx()
    assert context
    return {"tag": tag, "action": context.action_name, "task": context.task_name, "run": context.run_name,
            "mode": context.mode, "rank": context.rank, "world": context.world_size, "node": context.node_rank,
            "local_rank": context.local_rank, "raw": context.raw_data_path}


@env.task
async def context_parent() -> list[dict]:
    return list(await asyncio.gather(*[context_probe(str(i)) for i in range(20)]))


def test_context_is_per_call_under_gather():
    assert not flyte.ctx()
    results = flyte.with_runcontext(name="ctx-run").run(context_parent).outputs()[0]
    assert len({r["action"] for r in results}) == 20
    assert all(r["task"] == "core.context_probe" and r["run"] == "ctx-run" and r["mode"] == "local" for r in results)
    assert all(r["rank"] == 0 and r["world"] == 1 and r["node"] == 0 and r["local_rank"] == 0 for r in results)
    assert not flyte.ctx()


def test_rank_properties_follow_the_environment(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("GROUP_RANK", "1")
    result = flyte.run(context_probe, tag="x").outputs()[0]
    assert (result["rank"], result["local_rank"], result["world"], result["node"]) == (3, 1, 4, 1)


def test_raw_data_path_is_removed_unless_given(tmp_path):
    result = flyte.run(context_probe, tag="x").outputs()[0]
    assert not os.path.exists(result["raw"])
    kept = tmp_path / "raw"
    result = flyte.with_runcontext(raw_data_path=str(kept)).run(context_probe, tag="y").outputs()[0]
    assert result["raw"] == str(kept) and kept.exists()


@env.task
async def read_env(name: str) -> str | None:
    return os.environ.get(name)


def test_env_vars_from_environment_task_override_and_run():
    e = flyte.TaskEnvironment(name="envs", env_vars={"FLYTE_T_A": "env"})

    @e.task
    async def probe() -> list:
        return [os.environ.get("FLYTE_T_A"), os.environ.get("FLYTE_T_B")]

    assert flyte.run(probe).outputs()[0] == ["env", None]
    assert flyte.run(probe.override(env_vars={"FLYTE_T_A": "task"})).outputs()[0] == ["task", None]
    assert flyte.with_runcontext(env_vars={"FLYTE_T_B": "run"}).run(probe).outputs()[0] == ["env", "run"]
    assert "FLYTE_T_A" not in os.environ and "FLYTE_T_B" not in os.environ


# -- encoding ---------------------------------------------------------------------------------------------------

@env.task
async def takes_anything(value: object) -> str:
    return type(value).__name__


@env.task
async def takes_int(x: int) -> int:
    return x


@env.task
async def returns_lock() -> object:
    return threading.Lock()


def test_values_that_cannot_cross_a_process_fail_naming_the_parameter():
    with pytest.raises(EncodingError, match=r"core.takes_anything: input 'value'.*lock"):
        flyte.run(takes_anything, value=threading.Lock())
    with pytest.raises(EncodingError, match=r"core.returns_lock: output"):
        flyte.run(returns_lock)


def test_inputs_are_validated_against_annotations():
    with pytest.raises(EncodingError, match=r"core.takes_int: input 'x'.*Expected `int`, got `str`"):
        flyte.run(takes_int, x="seven")


def test_functions_and_untyped_objects_cross_by_cloudpickle():
    assert flyte.run(takes_anything, value=lambda: 1).outputs()[0] == "function"

    class Point:
        pass

    assert flyte.run(takes_anything, value=Point()).outputs()[0] == "Point"


def test_wrong_arguments_name_the_task():
    with pytest.raises(TypeError, match="core.square"):
        flyte.run(square, 1, 2)


# -- errors -----------------------------------------------------------------------------------------------------

class BadInput(ValueError):
    pass


@env.task
async def fails(x: int) -> int:
    raise BadInput(f"bad {x}")


@env.task
async def calls_failing() -> int:
    return await fails(5)


def test_user_exception_keeps_its_type_and_traceback():
    hook = sys.excepthook
    with pytest.raises(ValueError) as info:
        flyte.run(calls_failing)
    assert isinstance(info.value, BadInput) and str(info.value) == "bad 5"
    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "fails" in frames
    assert any("core.calls_failing" in note for note in getattr(info.value, "__notes__", []))
    assert sys.excepthook is hook


async def test_user_exception_reaches_async_caller():
    with pytest.raises(BadInput):
        await fails(1)


# -- map --------------------------------------------------------------------------------------------------------

@env.task
async def slow_double(x: int) -> int:
    await asyncio.sleep(0.5)
    return 2 * x


@env.task
async def map_driver(n: int, concurrency: int) -> list[int]:
    return [r async for r in flyte.map.aio(slow_double, range(n), concurrency=concurrency)]


def test_map_runs_concurrently_and_keeps_order():
    start = time.monotonic()
    assert flyte.run(map_driver, n=10, concurrency=0).outputs()[0] == [2 * i for i in range(10)]
    assert time.monotonic() - start < 2.5  # sequential would take 5 s
    start = time.monotonic()
    assert flyte.run(map_driver, n=4, concurrency=2).outputs()[0] == [0, 2, 4, 6]
    assert time.monotonic() - start >= 1.0  # two waves of two


def test_map_sync_form_and_return_exceptions():
    assert list(flyte.map(square, [1, 2, 3])) == [1, 4, 9]
    results = list(flyte.map(fails, [1, 2], return_exceptions=True))
    assert all(isinstance(r, BadInput) for r in results)
    with pytest.raises(ValueError, match="concurrency"):
        list(flyte.map(square, [1], concurrency=-1))
