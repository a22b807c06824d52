"""JVM Spark applications as tasks (GenericSparkConf), as users write them: ``python spark_jvm.py JAR``.

Locally, spark-submit runs the application and then the function's body; on Kubernetes the application is a
SparkApplication of type Java and is the whole task (the body does not run there), so such a task returns None.
Prints one JSON line: each call's value, or the type, code and message of its error."""
import json
import sys

import flyte
from flyteplugins.spark.task import GenericSparkConf

JAR = f"local://{sys.argv[1]}" if len(sys.argv) > 1 else "local:///opt/app/sum.jar"

summing = flyte.TaskEnvironment(name="jvm_sum", plugin_config=GenericSparkConf(
    main_class="flytetest.SumApp", applications_path=JAR, spark_conf={"spark.flyte.test.n": "100"}))
missing = flyte.TaskEnvironment(name="jvm_missing", plugin_config=GenericSparkConf(
    main_class="flytetest.Nope", applications_path=JAR))


@summing.task
def jvm_sum() -> None:
    """The application prints the sum of 1..n, computed by Spark."""


@missing.task
def jvm_missing() -> None:
    """The jar has no such class."""


@summing.task
def jvm_with_output() -> int:
    return 1


def outcome(task) -> object:
    try:
        return {"value": flyte.run(task).outputs()[0]}
    except Exception as exc:  # noqa: BLE001 - the error is what this program reports
        return {"error": type(exc).__name__, "code": getattr(exc, "code", None), "message": str(exc)}


if __name__ == "__main__":
    flyte.init_from_config()
    print(json.dumps({"sum": outcome(jvm_sum), "missing": outcome(jvm_missing),
                      "with_output": outcome(jvm_with_output)}, sort_keys=True))
