"""Slurm batch script tasks: ``flyteplugins.slurm.script.task``."""
