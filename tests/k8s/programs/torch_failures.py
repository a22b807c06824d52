"""PyTorch jobs that fail: rank 0 raising the user's own exception while rank 1 waits for it (its error must not
become the call's), and a worker that dies before its job can start. Prints, per task named on the command line,
the error the caller got."""
import json
import os
import sys

import flyte
from flyteplugins.pytorch.task import Master, PyTorch, Worker

env = flyte.TaskEnvironment(name="torch_fail", plugin_config=PyTorch(master=Master(), worker=Worker(replicas=1)))


class ShardError(Exception):
    """The user's own exception type."""


@env.task
def corrupt(x: int) -> int:
    import torch.distributed as dist

    dist.init_process_group("gloo")
    if dist.get_rank() == 0:
        raise ShardError(f"rank 0 found a corrupt shard {x}")
    dist.barrier()  # rank 0 never comes: this rank fails too, with an error of its own
    return x


@env.task
def lost_worker(x: int) -> int:
    if os.environ.get("RANK") == "1":
        os._exit(3)
    import torch.distributed as dist

    dist.init_process_group("gloo")  # waits for a worker that is gone
    return x


if __name__ == "__main__":
    flyte.init_from_config()
    tasks = {"corrupt": corrupt, "lost_worker": lost_worker}
    errors = {}
    for name in sys.argv[1:]:
        try:
            flyte.run(tasks[name], x=7)
            errors[name] = None
        except Exception as exc:
            errors[name] = {"type": type(exc).__name__, "users_class": isinstance(exc, ShardError),
                            "message": str(exc).splitlines()[0]}
    print(json.dumps(errors, sort_keys=True))
