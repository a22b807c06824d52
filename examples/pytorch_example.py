"""Distributed data-parallel training on this machine with the PyTorch plugin (CPU, gloo).

Run: ``python examples/pytorch_example.py``. The task is defined in ``__main__`` and shipped to the workers by value.
"""

from __future__ import annotations

import flyte
from flyteplugins.pytorch.task import Elastic

env = flyte.TaskEnvironment(name="ddp_example", plugin_config=Elastic(nproc_per_node=2))


@env.task
def train(steps: int, lr: float = 0.1) -> dict:
    """Fit y = 3x with DistributedDataParallel; each rank sees its own shard, gradients are all-reduced."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(1, 1, bias=False))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    x = torch.linspace(-1, 1, 64)[rank::world].unsqueeze(1)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), 3 * x)
        loss.backward()
        optimizer.step()
    weight = model.module.weight.item()
    dist.destroy_process_group()
    return {"weight": weight, "loss": loss.item(), "world_size": world, "rank": flyte.ctx().rank}


if __name__ == "__main__":
    result = flyte.run(train, 200).outputs()[0]
    print(result)
    assert result["world_size"] == 2 and result["rank"] == 0 and abs(result["weight"] - 3.0) < 0.05, result
