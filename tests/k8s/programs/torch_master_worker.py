"""A fixed-size PyTorch job, Kubeflow style: a master and one worker. Locally one node of two processes; on
Kubernetes a PyTorchJob whose master and worker pods each run the function (RANK, WORLD_SIZE, MASTER_ADDR/PORT
from the operator); the master's value is the task's."""
import json

import flyte
from flyteplugins.pytorch.task import Master, PyTorch, Worker

env = flyte.TaskEnvironment(name="torch_mw", plugin_config=PyTorch(master=Master(), worker=Worker(replicas=1)))


@env.task
def reduce(x: int) -> dict:
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    total = torch.tensor([float(dist.get_rank() + x)])
    dist.all_reduce(total)
    rank, world = dist.get_rank(), dist.get_world_size()
    dist.destroy_process_group()
    return {"world": world, "sum": total.item(), "rank": rank}


if __name__ == "__main__":
    flyte.init_from_config()
    print(json.dumps(flyte.run(reduce, x=1).outputs()[0], sort_keys=True))
