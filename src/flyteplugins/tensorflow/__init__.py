"""Distributed TensorFlow training: ``TfJob`` (Kubeflow TFJob), with ``Chief``, ``PS``, ``Worker`` and ``Evaluator``
replica groups. ``from flyteplugins.tensorflow import TfJob`` as with flytekit's plugin; TensorFlow itself loads only
in the replicas."""

from .task import PS, Chief, CleanPodPolicy, Evaluator, RestartPolicy, RunPolicy, TfJob, Worker

__all__ = ["PS", "Chief", "CleanPodPolicy", "Evaluator", "RestartPolicy", "RunPolicy", "TfJob", "Worker"]
