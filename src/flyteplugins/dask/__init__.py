"""Dask plugin: ``from flyteplugins.dask.task import Dask, Scheduler, WorkerGroup``. See :mod:`flyteplugins.dask.task`."""

from .task import Dask, DaskTask, Scheduler, WorkerGroup

__all__ = ["Dask", "DaskTask", "Scheduler", "WorkerGroup"]
