"""PyTorch distributed training: ``Elastic`` (torchrun / torch.distributed.elastic) and ``PyTorch`` (Kubeflow
fixed-size jobs). Import the configs from :mod:`flyteplugins.pytorch.task`; torch itself loads only in the
processes that train."""
