"""Fake operators of the Kubernetes API server test double: one per custom resource kind.

Each imitates the real operator of its kind closely enough that a remote run of a Spark / Ray / Dask / PyTorch
task really executes on the real engine, inside the double's pods (local processes run by the fake kubelet):

* :mod:`.spark` -- SparkApplication (``sparkoperator.k8s.io/v1beta2``, kubeflow/spark-operator v2.x);
* :mod:`.ray` -- RayJob (``ray.io/v1``, KubeRay 1.x);
* :mod:`.dask` -- DaskJob (``kubernetes.dask.org/v1``, dask-kubernetes operator);
* :mod:`.pytorch` -- PyTorchJob (``kubeflow.org/v1``, kubeflow training-operator v1.x);
* :mod:`.mpi` -- MPIJob (``kubeflow.org/v2beta1``, mpi-operator v0.8; ``kubeflow.org/v1``, training-operator);
* :mod:`.tensorflow` -- TFJob (``kubeflow.org/v1``, kubeflow training-operator v1.x);
* :mod:`.trainer` -- TrainJob (``trainer.kubeflow.org/v1alpha1``, Kubeflow Trainer v2, with JobSet's part);

all built on :mod:`.base` (reconcile loop, owned pods with controller ownerReferences, status subresource writes,
TTLs, free ports on 127.0.0.1). An operator is started only when its CRD was loaded (``KubeDouble(crd_dir=...)``);
``KubeDouble(operators=False)`` starts none.
"""

from .base import Operator
from .dask import DaskJobOperator
from .mpi import MPIJobOperator
from .pytorch import PyTorchJobOperator
from .ray import RayJobOperator
from .spark import SparkApplicationOperator
from .tensorflow import TFJobOperator
from .trainer import TrainJobOperator

ALL = (SparkApplicationOperator, RayJobOperator, DaskJobOperator, PyTorchJobOperator, MPIJobOperator, TFJobOperator,
       TrainJobOperator)

__all__ = ["ALL", "Operator", "DaskJobOperator", "MPIJobOperator", "PyTorchJobOperator", "RayJobOperator", "SparkApplicationOperator",
           "TrainJobOperator"]
