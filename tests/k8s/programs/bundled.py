"""A program whose tasks use a module of the user's (``bundled_lib``), so its runs ship a code bundle; the root's
pod calls children, whose pods import the module too:

    python bundled.py      # prints RESULT ...
"""
import asyncio

import bundled_lib

import flyte

env = flyte.TaskEnvironment(name="bundled")


@env.task
async def loud(word: str) -> str:
    return bundled_lib.shout(word)


@env.task
async def chorus(words: list[str]) -> list[str]:
    return list(await asyncio.gather(*(loud(word) for word in words)))


if __name__ == "__main__":
    flyte.init_from_config()
    run = flyte.with_runcontext(mode="remote").run(chorus, words=["a", "b"])
    print("RESULT", ",".join(run.outputs()[0]))
