"""The example runs as a script without a ``__main__`` guard: the task defined in ``__main__`` reaches the ranks by
value, and nothing is left behind."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _mpi_testkit import job_processes

pytestmark = [pytest.mark.mpi, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mpi_example.py"


def test_example_script_estimates_pi_on_four_ranks(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    result = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=240,
                            cwd=tmp_path, env={**os.environ, "FLYTE_PROGRESS": "quiet", "TMPDIR": str(temp)})
    assert result.returncode == 0, result.stderr[-3000:]
    out = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    assert out["ranks"] == 4 and out["world_size"] == 4 and out["rank"] == 0
    assert abs(out["pi"] - 3.1416) < 0.05
    assert not list(temp.iterdir()), f"temporary files left behind: {list(temp.iterdir())}"
    assert not job_processes()
