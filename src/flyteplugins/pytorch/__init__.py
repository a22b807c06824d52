"""PyTorch distributed training: ``Elastic`` (torchrun / torch.distributed.elastic) and ``PyTorch`` (Kubeflow
fixed-size jobs). ``from flyteplugins.pytorch import Elastic`` as with flyte-sdk's plugin; torch itself loads only in
the processes that train."""

from .task import Elastic, PyTorch, RunPolicy

__all__ = ["Elastic", "PyTorch", "RunPolicy"]
