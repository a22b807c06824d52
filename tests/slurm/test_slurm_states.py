"""Where a job's state comes from, against the real controller: ``squeue --json`` first, ``scontrol show job -o``
where squeue has no ``--json`` (Slurm before 21.08), and, once the controller forgot the job, ``sacct`` (here
accounting is off: the plugin says it does not know, rather than guessing)."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from flyteplugins.slurm._connection import ClusterLink
from flyteplugins.slurm._job import SlurmJob
from flyteplugins.slurm.ssh_utils import SSHConfig

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def write_script(cluster, name: str, body: str) -> str:
    path = Path(cluster.root, "home", name)
    path.write_text(f"#!/bin/bash\n{body}\n")
    return str(path)


async def test_each_source_reads_the_same_failed_job(cluster):
    link = ClusterLink(SSHConfig.of(cluster.ssh_config()))
    try:
        script = write_script(cluster, "fails.sh", "echo 'bad input' >&2\nexit 3")
        job = await SlurmJob.submit(link, script, {"output": "/dev/null", "error": "/dev/null"}, (),
                                    cwd=str(Path(cluster.root, "home")), where="test")
        status = await job.follow()
        assert (status.state, status.exit_code, status.signal, status.source) == ("FAILED", 3, None, "squeue")
        link.checked["squeue --json"] = "unsupported"  # as on a Slurm without it
        again = await job.query()
        assert (again.state, again.exit_code, again.source) == ("FAILED", 3, "scontrol")
        deadline = time.monotonic() + 90
        while cluster.job_record(job.job_id) and time.monotonic() < deadline:  # MinJobAge passes
            await anyio.sleep(1)
        assert await job.query() is None
        assert link.checked.get("sacct") == "unsupported"  # "accounting storage is disabled"
    finally:
        await link.close()


async def test_cancelled_job_is_seen_cancelled(cluster):
    link = ClusterLink(SSHConfig.of(cluster.ssh_config()))
    try:
        script = write_script(cluster, "sleeps.sh", "sleep 300")
        job = await SlurmJob.submit(link, script, {"output": "/dev/null"}, (), cwd=str(Path(cluster.root, "home")),
                                    where="test")
        await job.cancel()
        assert job.status is not None and job.status.state == "CANCELLED" and job.status.finished
        assert cluster.active_jobs(job.job_id) == []
    finally:
        await link.close()
