"""Shared test fixtures. Engine tests carry a marker (spark, ray, dask, torch, k8s, slow) so subsets can run."""

from __future__ import annotations

import os

import pytest

# Progress lines would interleave with pytest's output; tests that check progress ask for it explicitly.
os.environ.setdefault("FLYTE_PROGRESS", "quiet")


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
    """Run ``async def`` tests on asyncio through anyio's pytest plugin, without marking each one."""
    import inspect

    for item in items:
        function = getattr(item, "function", None)
        if function is not None and inspect.iscoroutinefunction(function):
            item.add_marker(pytest.mark.anyio)
