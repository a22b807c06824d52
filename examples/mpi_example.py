"""A Monte Carlo estimate of pi on 4 MPI ranks (2 workers x 2 slots) with the MPI plugin and mpi4py.

Run: ``python examples/mpi_example.py``. Locally a real ``mpirun`` (Open MPI from the ``[mpi]`` extra's wheel) starts
the ranks; with a Kubernetes config that says remote, the same call is an MPIJob of the MPI operator. Written without
an ``if __name__ == "__main__":`` guard, as scripts often are: the task travels to the ranks by value.
"""

import flyte
from flyteplugins.mpi.task import Launcher, MPIJob, Worker

env = flyte.TaskEnvironment(
    name="mpi_example",
    plugin_config=MPIJob(launcher=Launcher(requests={"cpu": "0.5", "memory": "1Gi"}),
                         worker=Worker(replicas=2, requests={"cpu": "1", "memory": "2Gi"}), slots=2),
)


@env.task
def estimate_pi(samples_per_rank: int) -> dict:
    """Every rank throws its own darts; rank 0's value (the reduced estimate) is the task's."""
    import random

    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rng = random.Random(comm.rank)
    hits = sum(rng.random() ** 2 + rng.random() ** 2 <= 1.0 for _ in range(samples_per_rank))
    total = comm.reduce(hits, op=MPI.SUM, root=0)
    ctx = flyte.ctx()
    return {"pi": 4.0 * total / (samples_per_rank * comm.size) if comm.rank == 0 else None,
            "ranks": comm.size, "rank": ctx.rank, "world_size": ctx.world_size}


flyte.init_from_config()
print(flyte.run(estimate_pi, 200_000).outputs()[0])
