"""Ray for flyte tasks: a local Ray instance sized from the config, or an existing cluster (``address=``).

The public surface is :mod:`flyteplugins.ray.task`; importing either module does not import Ray.
"""

from .task import HeadNodeConfig, RayFunctionTask, RayJobConfig, WorkerNodeConfig

__all__ = ["HeadNodeConfig", "RayFunctionTask", "RayJobConfig", "WorkerNodeConfig"]
