"""In the style of flyte-sdk's basics examples: positional config forms, a fan-out, the published tail."""
import asyncio
import json
from datetime import timedelta

import flyte
import flyte.remote

env = flyte.TaskEnvironment(
    "hello_world",
    resources=flyte.Resources(cpu=1, memory="250Mi"),
    secrets=[flyte.Secret("api-key")],
    cache=flyte.Cache("auto", salt="v1"),
    image=flyte.Image.from_debian_base().with_pip_packages("numpy"),
)


@env.task(retries=flyte.RetryStrategy(2), timeout=flyte.Timeout(timedelta(seconds=30)))
def fn(x: int) -> int:
    return x * 2


@env.task
async def pair(x: int) -> tuple[int, str]:
    return x, str(x)


@env.task
async def main(x_list: list[int]) -> float:
    values = await asyncio.gather(*(fn.aio(x) for x in x_list))
    return sum(values) / len(values)


if __name__ == "__main__":
    flyte.init_from_config()
    run = flyte.with_runcontext("local", labels={"team": "a"}).run(main, x_list=list(range(10)))
    print(run.name)
    print(run.url)
    run.wait()
    looked_up = flyte.remote.Run.get(run.name)
    two = flyte.run(pair, 7)
    print("RESULT " + json.dumps({
        "output": run.outputs()[0], "o0": run.outputs().o0, "url": run.url, "phase": looked_up.phase,
        "looked_up": looked_up.outputs()[0], "pair": list(two.outputs()), "secret_env": flyte.Secret("api-key").as_env_var,
        "version": flyte.version(),
    }))
