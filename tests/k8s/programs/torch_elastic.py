"""An elastic PyTorch task on two nodes: locally two elastic agents, on Kubernetes a PyTorchJob of two workers whose
agents meet through the operator's rendezvous (PET_*)."""
import json

import flyte
from flyteplugins.pytorch.task import Elastic

env = flyte.TaskEnvironment(name="torch_env", plugin_config=Elastic(nnodes=2, nproc_per_node=1))


@env.task
def world(x: int) -> dict:
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    total = torch.tensor([float(dist.get_rank() + x)])
    dist.all_reduce(total)
    return {"world": dist.get_world_size(), "sum": total.item()}


if __name__ == "__main__":
    flyte.init_from_config()
    print(json.dumps(flyte.run(world, x=1).outputs()[0], sort_keys=True))
