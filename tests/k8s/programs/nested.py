"""Nested calls, gather, flyte.map, override and a sync task: the same program locally and on the cluster.

    python nested.py [local|remote]      # prints the outputs as JSON
"""
import asyncio
import json
import os
import sys

import flyte

env = flyte.TaskEnvironment(name="nested", resources=flyte.Resources(cpu="100m", memory="200Mi"))


@env.task
async def square(x: int) -> int:
    print(f"squaring {x} ✓")
    return x * x


@env.task
def add(a: int, b: int) -> int:
    return a + b


@env.task
async def env_value(name: str) -> str:
    return os.environ.get(name, "")


@env.task
async def fan_out(n: int) -> list[int]:
    return list(await asyncio.gather(*(square(i) for i in range(n))))


@env.task
async def mapped(n: int) -> list[int]:
    return [value async for value in flyte.map.aio(square, range(n))]


@env.task
async def main(n: int) -> dict:
    gathered = await fan_out(n)
    via_map = await mapped(n)
    overridden = await env_value.override(env_vars={"GREETING": "hello"})("GREETING")
    total = await add(sum(gathered), 1)
    return {"gathered": gathered, "mapped": via_map, "overridden": overridden, "total": total}


if __name__ == "__main__":
    flyte.init_from_config()
    mode = sys.argv[1] if len(sys.argv) > 1 else "remote"
    run = flyte.with_runcontext(mode=mode).run(main, n=3)
    print(json.dumps(run.outputs()[0], sort_keys=True))
