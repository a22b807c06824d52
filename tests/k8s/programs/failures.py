"""Failure programs: each task fails one way on the cluster.

    python failures.py TASK
"""
import sys

import flyte

env = flyte.TaskEnvironment(name="failures")
bad_image = flyte.TaskEnvironment(name="badimage", image="registry.example/does-not-exist:1")
huge = flyte.TaskEnvironment(name="huge", resources=flyte.Resources(cpu="64"))
small = flyte.TaskEnvironment(name="small", resources=flyte.Resources(memory="100Mi"))


class BudgetError(ValueError):
    def __init__(self, message: str, budget: int) -> None:
        super().__init__(message)
        self.budget = budget


@env.task
async def raises(x: int) -> int:
    raise BudgetError(f"over budget by {x}", budget=x)


@small.task
async def hog(mb: int) -> int:
    blob = bytearray(mb * 1024 * 1024)
    for i in range(0, len(blob), 4096):
        blob[i] = 1
    import time

    time.sleep(5)
    return len(blob)


@bad_image.task
async def pull(x: int) -> int:
    return x


@huge.task
async def unschedulable(x: int) -> int:
    return x


@env.task
async def catches(x: int) -> str:
    try:
        await raises(x)
    except BudgetError as exc:
        return f"caught {type(exc).__name__} budget={exc.budget}"
    return "not raised"


if __name__ == "__main__":
    flyte.init_from_config()
    task = {"raises": raises, "hog": hog, "pull": pull, "unschedulable": unschedulable, "catches": catches}[sys.argv[1]]
    args = {"hog": {"mb": 400}}.get(sys.argv[1], {"x": 3})
    try:
        run = flyte.with_runcontext(mode="remote").run(task, **args)
    except Exception as exc:
        print(f"ERROR {type(exc).__name__} {[c.__name__ for c in type(exc).__mro__][:4]}")
        print(f"MESSAGE {exc}")
        if isinstance(exc, BudgetError):
            print(f"BUDGET {exc.budget}")
        sys.exit(1)
    print("RESULT", run.outputs()[0])
