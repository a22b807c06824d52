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
