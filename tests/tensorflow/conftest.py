"""Leak checks for the TensorFlow plugin's tests: no replica process and no job directory may outlive a call; and
TensorFlow kept quiet in the replicas."""

from __future__ import annotations

import os
import uuid

import pytest
from _tf_testkit import QUIET_TF, assert_no_leaks


@pytest.fixture(autouse=True)
def quiet_tensorflow(monkeypatch):
    """The replicas inherit these; a developer's own settings (TF_CPP_MIN_LOG_LEVEL=0 to debug) win."""
    for name, value in QUIET_TF.items():
        if name not in os.environ:
            monkeypatch.setenv(name, value)


@pytest.fixture
def run_name():
    """A unique run name whose temporary directories and processes are checked for leaks after the test."""
    prefix = f"tftest{uuid.uuid4().hex[:8]}"
    yield prefix
    assert_no_leaks(prefix)
