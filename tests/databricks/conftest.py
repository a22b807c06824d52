"""Fixtures of the Databricks tests: one Jobs API double (``jobs_double``, which really runs submitted
spark_python_tasks with pyspark) and one moto S3 server for the whole session, and per test the environment that
points DatabricksV2 tasks at them (workspace, token, storage, a fast poll)."""

from __future__ import annotations

import uuid

import pytest
from _databricks_testkit import BUCKET, TOKEN, scratch_left, wait_no_drivers

from _moto_kit import running


@pytest.fixture(scope="session")
def s3():
    with running(BUCKET) as server:  # the double's drivers inherit its env, as a cluster has its instance profile
        yield server


@pytest.fixture(scope="session")
def jobs_double(s3):
    from _databricks_testkit import DEFAULT_CLUSTER
    from jobs_double import JobsDouble

    double = JobsDouble(TOKEN).start()
    assert DEFAULT_CLUSTER in double.clusters
    try:
        yield double
    finally:
        double.stop()
    assert not double.violations, f"the double sent responses the SDK's classes do not read back: {double.violations}"


@pytest.fixture
def workspace(jobs_double, monkeypatch):
    """The environment of a caller of the double: instance, token, a storage prefix of its own, a fast poll. After
    the test: every run ended, no driver process and no run folder left."""
    prefix = uuid.uuid4().hex[:8]
    monkeypatch.setenv("FLYTE_DATABRICKS_INSTANCE", jobs_double.url)
    monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
    monkeypatch.setenv("FLYTE_DATABRICKS_STORAGE", f"s3://{BUCKET}/{prefix}")
    monkeypatch.setenv("FLYTE_DATABRICKS_POLL_INTERVAL", "0.2")
    yield prefix
    assert jobs_double.wait_idle(60), "runs still going on the double after the test"
    assert not wait_no_drivers(), f"driver processes left: {wait_no_drivers(0)}"
    assert not scratch_left(jobs_double.root), f"run folders left: {scratch_left(jobs_double.root)}"
