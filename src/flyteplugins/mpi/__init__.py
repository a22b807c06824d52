"""MPI and Horovod jobs: ``MPIJob`` / ``HorovodJob`` (the Kubeflow MPI operator's, flytekit's names). A real
``mpirun`` on this machine, an MPIJob on Kubernetes; importing this package loads no MPI."""

from .task import HorovodJob, Launcher, MPIJob, RunPolicy, Worker

__all__ = ["HorovodJob", "Launcher", "MPIJob", "RunPolicy", "Worker"]
