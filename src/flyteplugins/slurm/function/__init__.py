"""Slurm function tasks: ``flyteplugins.slurm.function.task``."""
