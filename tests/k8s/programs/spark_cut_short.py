"""A Spark call cut short: ``python spark_cut_short.py ctrl-c`` runs until interrupted, ``... timeout`` ends by the
task's timeout. The body has the JVM do some work, then writes "<its pid> <the JVM's pid>" to $SPARK_MARK (pods are
processes of this machine under the test double) and sleeps."""
import os
import sys
import time

import flyte
from flyteplugins.spark.task import Spark

env = flyte.TaskEnvironment(name="spark_slow", plugin_config=Spark(),
                            env_vars={"SPARK_MARK": os.environ.get("SPARK_MARK", "")})


@env.task
def slow(x: int) -> int:
    flyte.ctx().data["spark_session"].range(10).count()
    with open(os.environ["SPARK_MARK"], "w") as mark:
        mark.write(f"{os.getpid()} {os.getppid()}")  # the driver's Python, a child of spark-submit's JVM
    time.sleep(600)
    return x


if __name__ == "__main__":
    flyte.init_from_config()
    if sys.argv[1:] == ["timeout"]:
        try:
            flyte.run(slow.override(timeout=int(os.environ.get("SPARK_TIMEOUT", "45"))), 1)
        except flyte.errors.TaskTimeoutError as exc:
            print("TIMED OUT", type(exc).__name__, exc)
    else:
        flyte.run(slow, 1)
