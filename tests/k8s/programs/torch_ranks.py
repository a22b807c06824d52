"""Rank 0's value of two PyTorch jobs, each rank printing where it runs: an elastic job of two nodes (locally, run
this program twice with a shared ``PET_RDZV_ENDPOINT``, as ``torchrun --nnodes 2`` is run once per node; on
Kubernetes a PyTorchJob or a TrainJob of two node pods) and a master/worker job (locally one node of two
processes; on Kubernetes one pod per rank)."""
import json
import os
import sys

import flyte
from flyteplugins.pytorch.task import Elastic, Master, PyTorch, Worker

nodes_env = flyte.TaskEnvironment(name="torch_nodes", plugin_config=Elastic(nnodes=2, nproc_per_node=1))
fixed_env = flyte.TaskEnvironment(name="torch_fixed", plugin_config=PyTorch(master=Master(), worker=Worker(replicas=1)))


def reduce_ranks(x: int) -> dict:
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    print(f"rank {rank}/{world} on {os.environ.get('FLYTE_POD_NAME', 'this machine')}", flush=True)
    total = torch.tensor([float(rank + x)])
    dist.all_reduce(total)
    dist.destroy_process_group()
    return {"rank": rank, "world": world, "sum": total.item()}


@nodes_env.task
def nodes(x: int) -> dict:
    return reduce_ranks(x)


@fixed_env.task
def fixed(x: int) -> dict:
    return reduce_ranks(x)


if __name__ == "__main__":
    flyte.init_from_config()
    tasks = {"nodes": nodes, "fixed": fixed}
    print(json.dumps({name: flyte.run(tasks[name], x=1).outputs()[0] for name in sys.argv[1:]}, sort_keys=True))
