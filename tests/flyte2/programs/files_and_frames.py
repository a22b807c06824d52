"""flyte.io as flyte-sdk's examples use it: files and directories made in one task and read in another, data frames
wrapped, written and opened as another type."""
import json
import os
import tempfile

import pandas as pd
import pyarrow as pa

import flyte
from flyte.io import DataFrame, Dir, File

env = flyte.TaskEnvironment(name="io_env")


@env.task
async def write_file(text: str) -> File:
    f = File.new_remote("greeting.txt")
    async with f.open("wb") as fh:
        await fh.write(text.encode())
    return f


@env.task
async def read_file(f: File) -> str:
    async with f.open("rb") as fh:
        return (await fh.read()).decode()


@env.task
def make_dir(n: int) -> Dir:
    local = tempfile.mkdtemp(dir=".")
    for i in range(n):
        with open(os.path.join(local, f"part-{i}.csv"), "w") as out:
            out.write(f"{i}\n")
    os.makedirs(os.path.join(local, "nested"))
    with open(os.path.join(local, "nested", "deep.txt"), "w") as out:
        out.write("deep")
    return Dir.from_local_sync(local, remote_destination=str(Dir.new_remote().path))


@env.task
async def list_dir(d: Dir) -> list[str]:
    names = [f.name async for f in d.walk()]
    top = [f.name for f in d.walk_sync(recursive=False, file_pattern="*.csv")]
    return sorted(names) + ["|"] + sorted(top)


@env.task
async def make_frame(n: int) -> DataFrame:
    return DataFrame.wrap_df(pd.DataFrame({"x": list(range(n))}))


@env.task
async def write_frame(n: int) -> DataFrame:
    return await DataFrame.from_local(pd.DataFrame({"y": [i * 2 for i in range(n)]}))


@env.task
async def total(df: DataFrame, column: str) -> int:
    table = await df.open(pa.Table).all()
    return int(pd.Series(table.column(column).to_pylist()).sum())


@env.task
async def main() -> dict:
    f = await write_file("hello")
    frame_sum = await total(await make_frame(5), "x")
    written = await write_frame(4)
    return {"text": await read_file(f), "file": f, "listing": await list_dir(await make_dir(2)),
            "frame": frame_sum, "written": await total(written, "y"), "written_uri": written.uri}


if __name__ == "__main__":
    flyte.init_from_config()
    run = flyte.run(main)
    print(run.url)
    run.wait()
    out = run.outputs()[0]
    returned: File = out["file"]
    with returned.open_sync("rb") as fh:  # still readable after the run
        after = fh.read().decode()
    print("RESULT " + json.dumps({"text": out["text"], "after": after, "listing": out["listing"],
                                  "frame": out["frame"], "written": out["written"], "file_path": returned.path,
                                  "written_uri": out["written_uri"], "run": run.name}))
