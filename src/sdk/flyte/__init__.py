"""An async SDK for distributed compute, compatible with Flyte 2 (flyte-sdk v2) code.

```python
import flyte

env = flyte.TaskEnvironment(name="hello")

@env.task
async def square(x: int) -> int:
    return x * x

print(flyte.run(square, x=3).outputs())
```

Importing this package loads anyio, msgspec and cloudpickle only: engines (pyspark, ray, distributed, torch,
kubernetes_asyncio) load when a plugin's task runs, rich when progress is first shown.
"""

from __future__ import annotations

from . import errors
from ._config import Cache, PodTemplate, Resources, RetryStrategy, ReusePolicy, Secret, Timeout
from ._context import TaskContext, ctx
from ._environment import TaskEnvironment
from ._map import map
from ._run import Action, Run
from ._runner import RunContext, run, with_runcontext
from ._task import TaskTemplate

__version__ = "0.1.0"

__all__ = [
    "Action",
    "Cache",
    "PodTemplate",
    "Resources",
    "RetryStrategy",
    "ReusePolicy",
    "Run",
    "RunContext",
    "Secret",
    "TaskContext",
    "TaskEnvironment",
    "TaskTemplate",
    "Timeout",
    "ctx",
    "errors",
    "map",
    "run",
    "with_runcontext",
]
