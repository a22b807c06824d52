"""An elastic PyTorch job of two nodes that trains for far too long: ``slow`` runs until it is interrupted, ``late``
until its timeout. Each rank prints where it runs and, when ``SLOW_MARKER`` names a folder, leaves a file there
once its process group is up."""
import os
import sys
import time

import flyte
from flyteplugins.pytorch.task import Elastic

env = flyte.TaskEnvironment(name="torch_slow", plugin_config=Elastic(nnodes=2, nproc_per_node=1),
                            env_vars={"SLOW_MARKER": os.environ.get("SLOW_MARKER", "")})


def train_forever(x: int) -> int:
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    print(f"rank {rank} started on {os.environ.get('FLYTE_POD_NAME', 'this machine')}", flush=True)
    if os.environ.get("SLOW_MARKER"):
        with open(os.path.join(os.environ["SLOW_MARKER"], f"rank-{rank}"), "w") as handle:
            handle.write(str(os.getpid()))
    time.sleep(600)
    return x


@env.task
def slow(x: int) -> int:
    return train_forever(x)


@env.task(timeout=60)
def late(x: int) -> int:
    return train_forever(x)


if __name__ == "__main__":
    flyte.init_from_config()
    try:
        flyte.run({"slow": slow, "late": late}[sys.argv[1]], x=1)
    except flyte.errors.MaxRuntimeExceededError as exc:
        print("TIMED OUT", str(exc).splitlines()[0])
