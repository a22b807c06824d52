"""Ray for flyte tasks: a local Ray instance sized from the config, or an existing cluster (``address=``).

``from flyteplugins.ray import RayJobConfig`` as with flyte-sdk's plugin; importing it does not import Ray.
"""

from .task import AutoscalerOptionsConfig, HeadNodeConfig, RayFunctionTask, RayJobConfig, WorkerNodeConfig

__all__ = ["AutoscalerOptionsConfig", "HeadNodeConfig", "RayFunctionTask", "RayJobConfig", "WorkerNodeConfig"]
