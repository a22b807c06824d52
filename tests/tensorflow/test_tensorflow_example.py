"""The example runs as a plain script: a task defined in ``__main__``, no main guard, reaches the replicas by value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _tf_testkit import QUIET_TF, job_processes

pytestmark = [pytest.mark.tensorflow, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tensorflow_example.py"


def test_example_script_trains_on_two_workers_from_main(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in QUIET_TF}  # the example quiets TensorFlow itself
    result = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=240,
                            env={**env, "FLYTE_PROGRESS": "quiet", "TMPDIR": str(temp)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "'workers': 2" in result.stdout and "'replica': 'worker 0'" in result.stdout
    assert "oneDNN" not in result.stderr  # the task's env_vars reached the replicas
    leftovers = [p.name for p in temp.iterdir()]
    assert not leftovers, f"temporary files left behind: {leftovers}"
    assert not job_processes()
