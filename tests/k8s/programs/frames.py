"""A flyte.io.DataFrame (pandas) written in one pod, read in another and by the caller:

    python frames.py [local|remote]

Prints ``TOTAL`` (the sum a child pod read), ``URI`` (where the frame was written) and ``CALLER`` (the sum the
caller read back).
"""
import sys

import pandas as pd

import flyte
import flyte.io

env = flyte.TaskEnvironment(name="frames")


@env.task
async def make_frame(n: int) -> flyte.io.DataFrame:
    frame = pd.DataFrame({"x": list(range(n)), "label": [f"row {i} ✓" for i in range(n)]})
    return await flyte.io.DataFrame.from_local(frame)  # written in this pod; uploaded as it leaves it


@env.task
async def total(frame: flyte.io.DataFrame) -> int:
    read = await frame.open(pd.DataFrame).all()
    assert list(read["label"])[:1] == ["row 0 ✓"], read
    return int(read["x"].sum())


@env.task
async def frames(n: int) -> tuple[int, flyte.io.DataFrame]:
    made = await make_frame(n)
    return await total(made), made


if __name__ == "__main__":
    flyte.init_from_config()
    mode = sys.argv[1] if len(sys.argv) > 1 else "remote"
    summed, frame = flyte.with_runcontext(mode=mode).run(frames, n=10).outputs()
    print("TOTAL", summed)
    print("URI", frame.uri)
    print("CALLER", int(frame.open(pd.DataFrame).all_sync()["x"].sum()))
