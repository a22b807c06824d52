"""Lifecycle of real elastic jobs: timeout, cancellation (event loop free meanwhile), Ctrl-C, the zombie watchdog,
and two agents rendezvousing as two nodes. Every test asserts that no launcher, worker or temporary directory is
left (``run_name`` fixture, which also checks orphans by the job marker in their environment)."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest
from _torch_testkit import assert_no_leaks, job_processes

import flyte
from _marker_kit import wait_for_started
from flyte.errors import TaskTimeoutError
from flyteplugins.pytorch.task import Elastic, ZombieWorkersError

pytestmark = [pytest.mark.torch, pytest.mark.slow]

env = flyte.TaskEnvironment(name="torch_life", plugin_config=Elastic(nproc_per_node=2))


@env.task
def train_forever(marker_dir: str) -> None:
    Path(marker_dir, f"started-{flyte.ctx().rank}").write_text(str(os.getpid()))
    time.sleep(600)


def test_timeout_stops_every_worker(run_name, tmp_path):
    # The timeout also covers the launcher and both workers importing torch, which took over 20 s on a loaded
    # 2-core machine: it must strike while they train.
    bounded = train_forever.override(timeout=45)
    with pytest.raises(TaskTimeoutError, match="exceeded its timeout of 45s"):
        flyte.with_runcontext(name=run_name).run(bounded, str(tmp_path))
    assert len(list(tmp_path.glob("started-*"))) == 2  # the workers were running when the timeout struck


def test_cancellation_stops_every_worker_and_the_loop_stays_free(run_name, tmp_path):
    ticks = 0

    async def main() -> None:
        nonlocal ticks
        async with anyio.create_task_group() as group:
            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await anyio.sleep(0.05)

            group.start_soon(ticker)
            group.start_soon(flyte.with_runcontext(name=run_name).run.aio, train_forever, str(tmp_path))
            await anyio.to_thread.run_sync(wait_for_started, tmp_path, 2)
            ticks_when_running = ticks
            assert len(job_processes()) >= 3  # the leak check sees the launcher and both workers
            await anyio.sleep(1.0)
            assert ticks - ticks_when_running >= 5  # other work progressed while training ran
            group.cancel_scope.cancel()

    started = time.monotonic()
    anyio.run(main)
    assert ticks > 20 and time.monotonic() - started < 180
    pids = [int(p.read_text()) for p in tmp_path.glob("started-*")]
    assert pids and not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@env.task
def all_workers_abort_while_agent_hangs(marker_dir: str) -> None:
    """All workers abort at the same moment while the agent is frozen (SIGSTOP) and so never reaps them: the
    state the elastic agent deadlock leaves behind."""
    rank = flyte.ctx().rank
    Path(marker_dir, f"ready-{rank}").touch()
    while len(list(Path(marker_dir).glob("ready-*"))) < 2:
        time.sleep(0.01)
    if rank == 0:
        os.kill(os.getppid(), signal.SIGSTOP)
        Path(marker_dir, "go").write_text(repr(time.time()))
    while not Path(marker_dir, "go").exists():
        time.sleep(0.001)
    # No core dump: writing one keeps the dying worker from becoming the zombie the watchdog looks for.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.abort()


def test_zombie_watchdog_fails_the_task_within_the_bound(run_name, tmp_path):
    with pytest.raises(ZombieWorkersError) as info:
        flyte.with_runcontext(name=run_name).run(all_workers_abort_while_agent_hangs, str(tmp_path))
    detected_after = time.time() - float((tmp_path / "go").read_text())
    # Nominally 2-2.5 s (1.5 s of zombies, then the stop); the agent's own hang would last minutes.
    assert detected_after < 15.0, f"the watchdog took {detected_after:.1f}s"
    message = str(info.value)
    assert "all 2 worker(s) died" in message and "killed by SIGABRT (exit code -6)" in message


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


two_node_env = flyte.TaskEnvironment(name="torch_nodes")


@two_node_env.task
async def sum_of_ranks(base: int) -> dict:
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    tensor = torch.tensor([float(base + dist.get_rank())])
    dist.all_reduce(tensor)
    result = {"sum": tensor.item(), "world_size": dist.get_world_size(), "rank": dist.get_rank(),
              "node_rank": flyte.ctx().node_rank}
    dist.destroy_process_group()
    return result


def test_two_agents_rendezvous_as_two_nodes(run_name):
    endpoint = f"127.0.0.1:{_free_port()}"
    config = Elastic(nnodes=2, nproc_per_node=1, rdzv_endpoint=endpoint, rdzv_configs={"timeout": 120})
    node = sum_of_ranks.override(plugin_config=config)
    results: list = []

    async def one_node(index: int) -> None:
        run = await flyte.with_runcontext(name=f"{run_name}n{index}").run.aio(node, 100)
        results.append(run.outputs()[0])

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(one_node, 0)
            group.start_soon(one_node, 1)

    anyio.run(main)
    # Both nodes' calls return global rank 0's value: the all_reduce spanned both agents' workers.
    assert results == [{"sum": 201.0, "world_size": 2, "rank": 0, "node_rank": 0}] * 2


CTRL_C_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import flyte
    from flyteplugins.pytorch.task import Elastic

    env = flyte.TaskEnvironment(name="ctrlc", plugin_config=Elastic(nproc_per_node=2))

    @env.task
    def train(marker_dir: str) -> None:
        Path(marker_dir, f"started-{flyte.ctx().rank}").write_text(str(os.getpid()))
        time.sleep(600)

    if __name__ == "__main__":
        try:
            flyte.with_runcontext(name=sys.argv[2]).run(train, sys.argv[1])
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(130)
""")


def test_ctrl_c_stops_the_agent_and_every_worker(run_name, tmp_path):
    script = tmp_path / "ctrl_c_script.py"
    script.write_text(CTRL_C_SCRIPT)
    markers = tmp_path / "markers"
    markers.mkdir()
    process = subprocess.Popen([sys.executable, str(script), str(markers), run_name], stdout=subprocess.PIPE,
                               text=True, env={**os.environ, "FLYTE_PROGRESS": "quiet"})
    try:
        pids = wait_for_started(markers, 2)
        process.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the foreground program
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130 and "interrupted" in out
    assert not any(_alive(pid) for pid in pids)
    assert_no_leaks(run_name)
    assert not job_processes()
