"""MPI tasks run remotely as MPIJobs, against the Kubernetes API server double and its fake MPI operator (a test
double of the API server, kubelet and mpi-operator, whose pods are local processes; the launcher's real mpirun starts
the ranks on this machine; see ``kube_double.operators.mpi``). The program runs as users run it, with the same
outputs as its local run, and nothing is left behind."""

from __future__ import annotations

import pytest
from _k8s_testkit import REAL_CLUSTER, outputs_json, run_program, wait_clean

pytestmark = [pytest.mark.k8s, pytest.mark.real_cluster, pytest.mark.mpi, pytest.mark.slow]


def _left(kube) -> list[str]:
    left = wait_clean(kube)
    return left + [f"mpijobs/{o['metadata']['name']}" for o in kube.objects("mpijobs", "default")]


def test_mpi_tasks_run_as_mpi_jobs(config_dir, kube):
    remote = run_program("mpi_main.py", cwd=config_dir, timeout=240)
    assert remote.returncode == 0, remote.stderr[-5000:]
    # 2 ranks: 10 + 20; 4 ranks (2 workers x 2 slots): 10 + 20 + 30 + 40; the task's value is rank 0's
    assert outputs_json(remote) == {"four": {"rank": 0, "size": 4, "sum": 100},
                                    "two": {"rank": 0, "size": 2, "sum": 30}}
    if not REAL_CLUSTER:
        assert _left(kube) == []


def test_a_failing_rank_fails_the_mpi_job_with_the_users_exception(config_dir, kube):
    remote = run_program("mpi_main.py", "fail", cwd=config_dir, timeout=240)
    assert remote.returncode == 0, remote.stderr[-5000:]
    assert outputs_json(remote) == {"error": "ShardError", "message": "rank 1 found a corrupt shard"}
    if not REAL_CLUSTER:
        assert _left(kube) == []
