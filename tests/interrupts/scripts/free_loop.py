"""While an engine task blocks in engine calls, the caller's loop stays free: a plain async sibling keeps ticking,
and a failing sibling in a task group cancels the engine task promptly."""
import asyncio
import time

import anyio
from distributed import Client

import flyte
from flyteplugins.dask.task import Dask, WorkerGroup

dask_env = flyte.TaskEnvironment(name="dask_env", plugin_config=Dask(workers=WorkerGroup(number_of_workers=1)))
plain = flyte.TaskEnvironment(name="plain", depends_on=[dask_env])


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@dask_env.task
async def blocking(seconds: float) -> float:
    return Client().submit(nap, seconds).result()  # blocks this body's thread, not the caller's loop


@plain.task
async def ticker(seconds: float) -> int:
    ticks = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await asyncio.sleep(0.1)
        ticks += 1
    return ticks


@plain.task
async def fails_after(seconds: float) -> None:
    await asyncio.sleep(seconds)
    raise ValueError("sibling failed")


@plain.task
async def driver() -> str:
    await blocking(0.1)  # warm: the cluster is up
    _, ticks = await asyncio.gather(blocking(4.0), ticker(3.0))
    started = time.monotonic()
    try:
        async with anyio.create_task_group() as group:  # the failure cancels the engine task: it must end promptly
            group.start_soon(blocking, 60.0)
            group.start_soon(fails_after, 1.0)
    except Exception:  # the group's ExceptionGroup holding the ValueError
        pass
    return f"TICKS {ticks} CANCELLED_AFTER {time.monotonic() - started:.2f}"


if __name__ == "__main__":
    print(flyte.run(driver).outputs()[0])
