"""An async SDK for distributed compute, compatible with Flyte 2 (flyte-sdk v2) code.

```python
import flyte

env = flyte.TaskEnvironment(name="hello")

@env.task
async def square(x: int) -> int:
    return x * x

print(flyte.run(square, x=3).outputs()[0])
```

Importing this package loads anyio, msgspec and cloudpickle only: engines (pyspark, ray, distributed, torch,
kubernetes_asyncio) load when a plugin's task runs, rich when progress is first shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors
from ._config import Backoff, Cache, PodTemplate, Resources, RetryStrategy, ReusePolicy, Secret, Timeout
from ._context import TaskContext, ctx
from ._devices import AMD_GPU, APPLE_SILICON, GPU, HABANA_GAUDI, TPU, Device, DeviceClass, Neuron
from ._environment import TaskEnvironment
from ._grouping import custom_context, get_custom_context, group, trace
from ._map import map
from ._run import Action, Run
from ._runner import RunContext, run, with_runcontext
from ._task import TaskTemplate

if TYPE_CHECKING:
    from . import report
    from ._image import Image
    from ._initialize import (
        current_domain,
        current_project,
        init,
        init_from_api_key,
        init_from_config,
        init_in_cluster,
        init_passthrough,
        is_control_plane_available,
        logger,
        system_logger,
    )

_BACKEND_ONLY = ("AppHandle", "BaseCheckpoint", "CachePolicy", "Checkpoint", "ConditionWebhook", "Cron",
                 "Documentation", "FixedRate", "ImageBuild", "Link", "OnArtifact", "Trigger", "TriggerTime",
                 "TriggeredArtifact", "TriggeredPartition", "build", "build_images", "deploy", "latest_checkpoint",
                 "load_interactive_ctx", "load_plugin_config", "new_condition", "rerun", "run_python_script", "serve",
                 "with_servecontext")

# Loaded on first use, to keep `import flyte` close to the cost of its dependencies (benchmarks/bench_core.py).
_LAZY = {
    "Image": "._image", "report": ".report", "AsyncFunctionTaskTemplate": "._task",
    **dict.fromkeys(_BACKEND_ONLY, "._backend_only"),
    **dict.fromkeys(("current_domain", "current_project", "init", "init_from_api_key", "init_from_config",
                     "init_in_cluster", "init_passthrough", "is_control_plane_available", "logger",
                     "system_logger"), "._initialize"),
}


# flyte-sdk's type aliases.
Environment = TaskEnvironment
CacheRequest = Any
SecretRequest = Any
TimeoutType = Any


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'flyte' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(module_name, __name__)
    value = module if name == module_name.lstrip(".") else getattr(module, name)
    globals()[name] = value
    return value


__version__ = "0.1.0"


def version() -> str:
    """This SDK's version."""
    return __version__


__all__ = [
    "AMD_GPU",
    "APPLE_SILICON",
    "GPU",
    "HABANA_GAUDI",
    "TPU",
    "Image",
    "Action",
    "Backoff",
    "Cache",
    "Device",
    "DeviceClass",
    "Neuron",
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
    "__version__",
    "ctx",
    "current_domain",
    "current_project",
    "custom_context",
    "errors",
    "get_custom_context",
    "group",
    "init",
    "init_from_api_key",
    "init_from_config",
    "init_in_cluster",
    "init_passthrough",
    "is_control_plane_available",
    "logger",
    "map",
    "report",
    "run",
    "system_logger",
    "trace",
    "version",
    "with_runcontext",
]
