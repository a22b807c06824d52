"""The example runs as a script: a sync DDP task defined in ``__main__`` reaches the workers by value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _torch_testkit import job_processes

pytestmark = [pytest.mark.torch, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pytorch_example.py"


def test_example_script_trains_with_ddp_from_main(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    result = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=240,
                            env={**os.environ, "FLYTE_PROGRESS": "quiet", "TMPDIR": str(temp)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "'world_size': 2" in result.stdout and "'rank': 0" in result.stdout
    leftovers = [p.name for p in temp.iterdir() if not p.name.startswith("torchinductor_")]  # torch's own cache
    assert not leftovers, f"temporary files left behind: {leftovers}"
    assert not job_processes()
