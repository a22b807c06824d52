"""Leak checks for the MPI plugin's tests: no mpirun, daemon or rank process and no job directory may outlive a
call."""

from __future__ import annotations

import uuid

import pytest
from _mpi_testkit import assert_no_leaks


@pytest.fixture
def run_name():
    """A unique run name whose temporary directories and processes are checked for leaks after the test."""
    prefix = f"mpitest{uuid.uuid4().hex[:8]}"
    yield prefix
    assert_no_leaks(prefix)
