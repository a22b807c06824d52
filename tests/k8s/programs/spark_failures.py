"""Spark calls that fail, as their caller sees them: the task's own exception (FAILED, the driver's error document),
and a submission the operator cannot make (SUBMISSION_FAILED: the driver pod's cpu request is not a quantity, so
the API server refuses the pod). Prints one JSON line with each error's type, code, message and how long it took."""
import json
import time

import flyte
from flyteplugins.spark.task import Spark


class LedgerError(Exception):
    """The user's own exception type: the caller gets it back."""


env = flyte.TaskEnvironment(name="spark_fail", plugin_config=Spark())
unsubmittable = flyte.TaskEnvironment(name="spark_unsubmittable", plugin_config=Spark(
    spark_conf={"spark.kubernetes.driver.request.cores": "one"}))


@env.task
async def count_then_fail(n: int) -> int:
    counted = flyte.ctx().data["spark_session"].range(n).count()
    raise LedgerError(f"counted {counted} rows, expected none")


@unsubmittable.task
async def never_runs(n: int) -> int:
    return n


def outcome(task, *args) -> dict:
    started = time.monotonic()
    try:
        return {"value": flyte.run(task, *args).outputs()[0]}
    except Exception as exc:  # noqa: BLE001 - the error is what this program reports
        return {"error": type(exc).__name__, "user_type": isinstance(exc, LedgerError),
                "code": getattr(exc, "code", None), "message": str(exc), "seconds": time.monotonic() - started}


if __name__ == "__main__":
    flyte.init_from_config()
    print(json.dumps({"failed": outcome(count_then_fail, 10), "submission": outcome(never_runs, 1)}, sort_keys=True))
