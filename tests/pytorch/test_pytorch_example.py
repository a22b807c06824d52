"""The example runs as a script: a sync DDP task defined in ``__main__`` reaches the workers by value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_no_leaks

pytestmark = [pytest.mark.torch, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pytorch_example.py"


def test_example_script_trains_with_ddp_from_main():
    result = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=240,
                            env={**os.environ, "FLYTE_PROGRESS": "quiet"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "'world_size': 2" in result.stdout and "'rank': 0" in result.stdout
    assert_no_leaks("r")  # the example's run (default name r...) left no process or directory
