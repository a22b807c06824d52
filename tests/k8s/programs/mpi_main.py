"""MPI tasks as users write them: locally a real mpirun; with a config that says remote, each MPI call is an MPIJob
whose launcher's mpirun starts the ranks (every rank runs the call; rank 0's value is the task's)."""
import json
import sys

import flyte
from flyteplugins.mpi.task import MPIJob, Worker

env = flyte.TaskEnvironment(name="mpi_env", plugin_config=MPIJob(worker=Worker(replicas=2)))


@env.task
def allreduce(x: int) -> dict:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    return {"sum": comm.allreduce(x * (comm.rank + 1)), "size": comm.size, "rank": flyte.ctx().rank}


class ShardError(Exception):
    pass


@env.task
def fails_on_rank_one() -> int:
    from mpi4py import MPI

    if MPI.COMM_WORLD.rank == 1:
        raise ShardError("rank 1 found a corrupt shard")
    MPI.COMM_WORLD.barrier()
    return 0


@flyte.TaskEnvironment(name="driver", depends_on=[env]).task
async def driver(x: int) -> dict:
    bigger = MPIJob(worker=Worker(replicas=2), slots=2)
    return {"two": await allreduce(x), "four": await allreduce.override(plugin_config=bigger)(x)}


if __name__ == "__main__":
    flyte.init_from_config()
    if sys.argv[1:] == ["fail"]:
        try:
            flyte.run(fails_on_rank_one)
        except ShardError as error:
            print(json.dumps({"error": type(error).__name__, "message": str(error)}))
    else:
        print(json.dumps(flyte.run(driver, x=10).outputs()[0], sort_keys=True))
