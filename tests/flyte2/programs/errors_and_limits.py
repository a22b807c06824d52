"""Timeouts, deadlines and non-retried errors with flyte-sdk's error classes."""
import json

import flyte
import flyte.errors

env = flyte.TaskEnvironment("limits")
ATTEMPTS: list[str] = []


@env.task(retries=3)
async def give_up() -> int:
    ATTEMPTS.append("give_up")
    raise flyte.errors.NonRecoverableError("bad input, no point retrying")


@env.task(retries=5, timeout=flyte.Timeout(max_runtime=10, deadline=1.0))
async def slow() -> int:
    import asyncio

    ATTEMPTS.append("slow")
    await asyncio.sleep(0.3)
    raise ValueError("flaky")


@env.task(timeout=0.2)
async def too_long() -> int:
    import asyncio

    await asyncio.sleep(5)
    return 1


def outcome(task) -> str:
    try:
        flyte.run(task)
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}|{isinstance(exc, TimeoutError)}|{isinstance(exc, flyte.errors.TaskTimeoutError)}"
    return "ok"


if __name__ == "__main__":
    flyte.init_from_config()
    result = {"give_up": outcome(give_up), "slow": outcome(slow), "too_long": outcome(too_long)}
    result["attempts"] = {name: ATTEMPTS.count(name) for name in set(ATTEMPTS)}
    print("RESULT " + json.dumps(result))
