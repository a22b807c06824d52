"""Leak checks shared by the Spark tests: JVMs and Python workers started by this test process, Spark temp dirs.

A module of its own (not conftest) so test files can import it by a name no other plugin's tests use."""

from __future__ import annotations

import glob
import os
import tempfile
import time

import psutil

# Spark's own temp dirs, should the JVM write to /tmp instead of the session's scratch dir.
_JVM_TEMP_PATTERNS = ("spark-*", "blockmgr-*")


def engine_children() -> list[psutil.Process]:
    """Java processes and pyspark workers descending from this test process."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            name = child.name()
            cmdline = " ".join(child.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if name == "java" or "pyspark.daemon" in cmdline or "pyspark.worker" in cmdline:
            found.append(child)
    return found


def spark_temp_dirs() -> set[str]:
    """Everything in this module's private temp dir (scratch dirs, run dirs) and Spark dirs in /tmp."""
    private = tempfile.gettempdir()
    found = {os.path.join(private, name) for name in os.listdir(private)} if os.path.isdir(private) else set()
    return found | {path for pattern in _JVM_TEMP_PATTERNS for path in glob.glob(os.path.join("/tmp", pattern))}


def assert_no_engine_left(before_dirs: set[str], grace: float = 15.0, keep: frozenset[int] = frozenset()) -> None:
    """No engine process of ours remains and no Spark temp dir appeared (waits briefly for exits in progress).
    ``keep``: pids of long-lived daemons a test started on purpose (a standalone master and worker)."""
    deadline = time.monotonic() + grace

    def left_over() -> list[psutil.Process]:
        return [p for p in engine_children() if p.pid not in keep]

    while left_over() and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [(p.pid, p.name()) for p in left_over()]
    assert not left, f"engine processes left behind: {left}"
    new_dirs = spark_temp_dirs() - before_dirs
    assert not new_dirs, f"Spark temp dirs left behind: {sorted(new_dirs)}"
