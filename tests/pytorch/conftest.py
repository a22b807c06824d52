"""Leak checks for the PyTorch plugin's tests: no launcher/worker process and no job directory may outlive a call."""

from __future__ import annotations

import uuid

import pytest
from _torch_testkit import assert_no_leaks


@pytest.fixture
def run_name():
    """A unique run name whose temporary directories and processes are checked for leaks after the test."""
    prefix = f"torchtest{uuid.uuid4().hex[:8]}"
    yield prefix
    assert_no_leaks(prefix)
