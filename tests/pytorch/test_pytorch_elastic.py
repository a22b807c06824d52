"""Real torch.distributed.elastic jobs (CPU, gloo): results, ranks, overrides, settings the workers see, failures,
restarts. Each test checks that no launcher, worker or temporary directory outlives it (``run_name`` fixture)."""

from __future__ import annotations

import os

import pytest

import flyte
from flyteplugins.pytorch.task import Elastic, PyTorch, TorchJobError, Worker

pytestmark = [pytest.mark.torch, pytest.mark.slow]

elastic_env = flyte.TaskEnvironment(
    name="torch_elastic",
    plugin_config=Elastic(nproc_per_node=2, nccl_heartbeat_timeout_sec=77, nccl_async_error_handling=2,
                          nccl_enable_monitoring=False, nccl_collective_timeout_sec=42),
)
driver_env = flyte.TaskEnvironment(name="torch_driver")


@elastic_env.task
async def all_reduce_report(base: int, *, scale: int = 1) -> dict:
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    tensor = torch.tensor([float((base + dist.get_rank()) * scale)])
    dist.all_reduce(tensor)
    ctx = flyte.ctx()
    report = {
        "reduced": tensor.item(),
        "world_size": dist.get_world_size(),
        "ctx": (ctx.rank, ctx.local_rank, ctx.world_size, ctx.node_rank, ctx.task_name),
        "env": {k: os.environ.get(k) for k in ("MASTER_ADDR", "MASTER_PORT", "GROUP_RANK", "OMP_NUM_THREADS",
                                               "PYTHONUNBUFFERED", "TORCH_NCCL_HEARTBEAT_TIMEOUT_SEC",
                                               "TORCH_NCCL_ASYNC_ERROR_HANDLING", "TORCH_NCCL_ENABLE_MONITORING",
                                               "FLYTE_NCCL_COLLECTIVE_TIMEOUT_SEC")},
        "pg_timeout": dist.distributed_c10d._get_default_timeout(dist.Backend.GLOO).total_seconds(),
    }
    dist.destroy_process_group()
    return report


@driver_env.task
async def resize_in_one_run(base: int) -> list:
    two = await all_reduce_report(base, scale=10)
    three = await all_reduce_report.override(plugin_config=Elastic(nproc_per_node=3))(base)
    kubeflow = await all_reduce_report.override(plugin_config=PyTorch(worker=Worker(replicas=1)))(base)
    return [two, three, kubeflow]


def test_async_all_reduce_returns_rank0_value_and_override_resizes(run_name):
    two, three, kubeflow = flyte.with_runcontext(name=run_name).run(resize_in_one_run, 5).outputs()[0]
    assert two["reduced"] == (5 + 6) * 10 and two["world_size"] == 2
    assert list(two["ctx"]) == [0, 0, 2, 0, "torch_elastic.all_reduce_report"]  # rank 0's value, with its context
    assert two["env"]["MASTER_ADDR"] and two["env"]["MASTER_PORT"] and two["env"]["GROUP_RANK"] == "0"
    assert two["env"]["OMP_NUM_THREADS"] == "1" and two["env"]["PYTHONUNBUFFERED"] == "1"
    assert two["env"]["TORCH_NCCL_HEARTBEAT_TIMEOUT_SEC"] == "77"
    assert two["env"]["TORCH_NCCL_ASYNC_ERROR_HANDLING"] == "2"
    assert two["env"]["TORCH_NCCL_ENABLE_MONITORING"] == "0"
    assert two["pg_timeout"] == 42.0  # collective timeout became the default process-group timeout
    assert three["world_size"] == 3 and three["reduced"] == 5 + 6 + 7 and three["ctx"][2] == 3
    assert three["pg_timeout"] == 30 * 60.0 and three["env"]["TORCH_NCCL_HEARTBEAT_TIMEOUT_SEC"] is None
    assert kubeflow["world_size"] == 2  # PyTorch(worker=Worker(replicas=1)): master + 1 worker


failing_env = flyte.TaskEnvironment(name="torch_failing", plugin_config=Elastic(nproc_per_node=2))


class TrainingDiverged(Exception):
    def __init__(self, step: int) -> None:
        super().__init__(f"loss is NaN at step {step}")
        self.step = step

    def __reduce__(self):  # rebuilt from its constructor argument when it crosses back from the worker
        return (type(self), (self.step,))


@failing_env.task
def rank1_raises(step: int) -> int:
    if flyte.ctx().rank == 1:
        raise TrainingDiverged(step)
    import time

    time.sleep(30)  # stopped by the agent once rank 1 failed
    return 0


@failing_env.task
def rank1_killed() -> int:
    import signal

    if flyte.ctx().rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    import time

    time.sleep(30)
    return 0


@failing_env.task
def flaky_first_attempt(marker_dir: str) -> str:
    attempt = os.environ["TORCHELASTIC_RESTART_COUNT"]
    if flyte.ctx().rank == 1 and attempt == "0":
        raise RuntimeError("transient failure")
    return f"ok after restart {attempt}"


@driver_env.task
async def failures(marker_dir: str) -> dict:
    out: dict = {}
    try:
        await rank1_raises(7)
    except TrainingDiverged as exc:
        out["raised"] = (exc.step, str(exc), "\n".join(getattr(exc, "__notes__", [])))
    try:
        await rank1_killed()
    except TorchJobError as exc:
        out["killed"] = str(exc)
    restarting = flaky_first_attempt.override(plugin_config=Elastic(nproc_per_node=2, max_restarts=1))
    out["restarted"] = await restarting(marker_dir)
    return out


def test_worker_failures_name_the_rank_and_keep_the_user_type_and_restarts_recover(run_name, tmp_path):
    out = flyte.with_runcontext(name=run_name).run(failures, str(tmp_path)).outputs()[0]
    step, message, notes = out["raised"]
    assert step == 7 and message == "loss is NaN at step 7"
    assert "worker rank 1 (local rank 1, node 0, pid" in notes and "failed with exit code 1" in notes
    assert "Worker traceback (rank 1)" in notes and "raise TrainingDiverged(step)" in notes
    assert "rank 1 (local rank 1, pid" in out["killed"] and "SIGKILL (exit code -9)" in out["killed"]
    assert "OOM killer" in out["killed"]
    assert out["restarted"] == "ok after restart 1"
