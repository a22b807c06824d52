"""Where the Java runtime and Spark's launch scripts are, checked before anything is launched so that a missing
piece is one clear error instead of a gateway timeout."""

from __future__ import annotations

import importlib.util
import os
import shutil


class JavaNotFoundError(RuntimeError):
    """No Java runtime: Spark's driver (and spark-submit) cannot start."""


def java_executable() -> str:
    """The ``java`` Spark will launch: ``$JAVA_HOME/bin/java`` when JAVA_HOME is set, else ``java`` on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = os.path.join(java_home, "bin", "java")
        if os.access(candidate, os.X_OK):
            return candidate
        raise JavaNotFoundError(
            f"JAVA_HOME={java_home!r} has no executable bin/java; Spark needs a Java runtime (17 or 21): point "
            "JAVA_HOME at a JDK/JRE or unset it to use the java on PATH"
        )
    found = shutil.which("java")
    if found is None:
        raise JavaNotFoundError(
            "JAVA_HOME is not set and no java is on PATH; Spark needs a Java runtime (17 or 21): install one "
            "(e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )
    return found


def spark_home() -> str:
    """SPARK_HOME, or the pyspark package directory, which carries Spark's jars and bin/ scripts."""
    home = os.environ.get("SPARK_HOME")
    if home:
        return home
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("Spark: pyspark is not installed; install the plugin's extra: pip install "
                           "'flyte-distributed[spark]'")
    return list(spec.submodule_search_locations)[0]


def spark_script(name: str) -> str:
    """Path of one of Spark's launch scripts (``spark-submit``, ``spark-class``)."""
    path = os.path.join(spark_home(), "bin", name)
    if not os.path.exists(path):
        raise RuntimeError(f"Spark: {path} not found; set SPARK_HOME to a Spark distribution or reinstall pyspark")
    return path
