"""Shared test fixtures. Engine tests carry a marker (spark, ray, dask, torch, mpi, tensorflow, slurm, databricks, k8s,
slow) so subsets can run."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

# Progress lines would interleave with pytest's output; tests that check progress ask for it explicitly.
os.environ.setdefault("FLYTE_PROGRESS", "quiet")
# Run records (summary pages, reports) of the test session's runs, and of the scripts it starts, go here, not to the
# user's data dir; removed at the end of the session.
_RUN_RECORDS = tempfile.mkdtemp(prefix="runrecords-")
os.environ["FLYTE_RUNS_DIR"] = _RUN_RECORDS


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_RUN_RECORDS, ignore_errors=True)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """An empty output cache for one test."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("FLYTE_CACHE_DIR", str(directory))
    return directory


@pytest.fixture
def anyio_backend():
    return "asyncio"


def pytest_collection_modifyitems(items):
    """Run ``async def`` tests on asyncio through anyio's pytest plugin, without marking each one; and run the Slurm
    tests last: their cluster (munged, slurmctld, slurmd, sshd) is one per session and lives until the session ends,
    so other suites' leak checks, which count this process's children, would see its daemons."""
    import inspect

    for item in items:
        function = getattr(item, "function", None)
        if function is not None and inspect.iscoroutinefunction(function):
            item.add_marker(pytest.mark.anyio)
    items.sort(key=lambda item: item.get_closest_marker("slurm") is not None)  # stable: the order is kept otherwise
