"""``examples/slurm_example.py`` runs as documented against the test cluster: its three Slurm tasks (a function in a
script template, an inline script with a File output, an existing batch script with arguments)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "slurm_example.py"


def test_example_runs_against_the_cluster(cluster):
    home = Path(cluster.root, "home")
    arguments = home / "example-args.txt"
    script = home / "example_train.sh"
    script.write_text(f"#!/bin/bash\n#SBATCH --output=/dev/null\necho \"$*\" > {arguments}\n")
    env = {**os.environ, "FLYTE_PROGRESS": "quiet", "FLYTE_SLURM_HOST": cluster.host,
           "FLYTE_SLURM_PORT": str(cluster.ssh_port), "FLYTE_SLURM_USER": cluster.username,
           "FLYTE_SLURM_KEY": str(cluster.user_key), "FLYTE_SLURM_KNOWN_HOSTS": str(cluster.known_hosts),
           "FLYTE_SLURM_PYTHON": sys.executable, "FLYTE_SLURM_REMOTE_DIR": cluster.remote_dir,
           "FLYTE_SLURM_BATCH_SCRIPT": str(script)}
    result = subprocess.run([sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["Processed 1 on Slurm", "Hello from Slurm! (1)", "batch script done"]
    assert arguments.read_text() == "--data /data/input.csv\n"
