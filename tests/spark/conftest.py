"""Leak checks shared by the Spark tests: JVMs and Python workers started by this test process, Spark temp dirs."""

from __future__ import annotations

import glob
import os
import tempfile
import time

import psutil
import pytest

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


@pytest.fixture
def leak_check():
    """Use in a lifecycle test: fails it if the test leaves a JVM, a pyspark worker or a Spark temp dir."""
    before = spark_temp_dirs()
    yield before
    assert_no_engine_left(before)


@pytest.fixture(scope="module", autouse=True)
def private_tempdir(tmp_path_factory):
    """Python's temp dir for the module: the scratch and run dirs the plugin creates land here, apart from those
    of other test sessions sharing this machine, so a leak check sees only this process's leftovers."""
    previous = tempfile.tempdir
    tempfile.tempdir = str(tmp_path_factory.mktemp("spark-tmp"))
    try:
        yield tempfile.tempdir
    finally:
        tempfile.tempdir = previous


@pytest.fixture(scope="session", autouse=True)
def no_java_after_spark_tests():
    """After the whole Spark test session, no Java process started by the tests may remain."""
    yield
    left = engine_children()
    for process in left:  # do not leave them to the next test session, but still fail this one
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    assert not left, f"Java/pyspark processes left after the Spark tests: {[(p.pid, p.name()) for p in left]}"
