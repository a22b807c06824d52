"""Fixtures of the Spark tests: a private temp dir per module, per-test and session-wide leak checks."""

from __future__ import annotations

import tempfile

import psutil
import pytest
from spark_leaks import assert_no_engine_left, engine_children, spark_temp_dirs


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
