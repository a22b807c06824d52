# A script without a __main__ guard, run as a plain script: the pods must not run its top level again.
import flyte

env = flyte.TaskEnvironment(name="noguard")


@env.task
async def double(x: int) -> int:
    return 2 * x


@env.task
async def root(x: int) -> int:
    return await double(x) + 1


flyte.init_from_config()
print("RESULT", flyte.run(root, x=20).outputs()[0])
