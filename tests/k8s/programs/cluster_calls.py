"""Remote calls that end early or carry data: python cluster_calls.py TASK

- sleeper: sleeps long (the test interrupts it with Ctrl-C);
- siblings: one child fails while its sibling still runs (the sibling's Job must go);
- sleepers: two children that sleep long (the test deletes their parent's Job);
- secret: reads a Kubernetes Secret through flyte.Secret (its value must never appear in a manifest or a log);
- files: a File made in one pod and read in another and by the caller (DataFrames: frames.py).
"""
import asyncio
import hashlib
import os
import sys

import flyte
import flyte.io

env = flyte.TaskEnvironment(name="calls")
with_secret = flyte.TaskEnvironment(name="calls_secret", secrets=[flyte.Secret(key="token", group="api-creds")])


@env.task
async def sleeper(seconds: float) -> str:
    print("sleeping", flush=True)
    await asyncio.sleep(seconds)
    return "woke"


@env.task
async def fail_soon(x: int) -> int:
    await asyncio.sleep(1)
    raise RuntimeError(f"child {x} failed")


@env.task
async def siblings(x: int) -> list:
    return list(await asyncio.gather(fail_soon(x), sleeper(120)))


@env.task
async def sleepers(x: int) -> list:
    return list(await asyncio.gather(sleeper(120), sleeper(120)))


@with_secret.task
async def secret(x: int) -> str:
    value = os.environ["API_CREDS_TOKEN"]
    return hashlib.sha256(value.encode()).hexdigest()


@env.task
async def make_file(text: str) -> flyte.io.File:
    made = flyte.io.File.new_remote("note.txt")  # in the pod's run data; uploaded as it leaves the pod
    with made.open_sync("wb") as handle:
        handle.write(text.encode())
    return made


@env.task
async def read_file(f: flyte.io.File) -> str:
    async with f.open("rb") as handle:
        return (await handle.read()).decode()


@env.task
async def files(text: str) -> tuple[str, flyte.io.File]:
    made = await make_file(text)
    return await read_file(made), made


if __name__ == "__main__":
    flyte.init_from_config()
    name = sys.argv[1]
    arguments = {"sleeper": {"seconds": 120}, "files": {"text": "hello ✓"}}.get(name, {"x": 1})
    try:
        run = flyte.with_runcontext(mode="remote").run(globals()[name], **arguments)
    except Exception as exc:
        print(f"ERROR {type(exc).__name__}: {str(exc).splitlines()[0]}")
        sys.exit(1)
    outputs = run.outputs()
    if name == "files":
        read_back, made = outputs
        print("READ", read_back)
        print("PATH", made.path)
        with made.open_sync("rb") as handle:
            print("CALLER", handle.read().decode())
    else:
        print("RESULT", outputs[0])
