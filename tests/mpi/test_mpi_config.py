"""MPIJob / HorovodJob configs (flytekit's names and defaults), their validation, the deprecated spellings, the
seed documents' configs, and the command lines the launcher runs (no MPI started here)."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

import flyte
from flyteplugins.mpi._launch import horovodrun_command, kubernetes_launcher_command, local_command
from flyteplugins.mpi.task import (
    CleanPodPolicy,
    HorovodFunctionTask,
    HorovodJob,
    Launcher,
    MPIFunctionTask,
    MPIJob,
    RestartPolicy,
    RunPolicy,
    Worker,
)

pytestmark = pytest.mark.mpi


def test_defaults_are_flytekits():
    job = MPIJob()
    assert (job.slots, job.run_policy, job.num_workers, job.num_launcher_replicas) == (1, None, None, None)
    assert job.num_procs == 1 and job.worker_replicas == 1
    horovod = HorovodJob()
    assert (horovod.verbose, horovod.log_level, horovod.discovery_script_path, horovod.elastic_timeout) == (
        False, "INFO", "/etc/mpi/discover_hosts.sh", 1200)


def test_seed_configs_validate():
    """Seed 000's HorovodJob and seed 003's MPIJob / HorovodJob, with their resources written as the seeds do."""
    seed000 = HorovodJob(worker=Worker(replicas=2, requests={"cpu": "1", "memory": "2Gi"}),
                         launcher=Launcher(requests={"cpu": "0.5", "memory": "1Gi"}), slots=4, verbose=True)
    assert seed000.num_procs == 8 and isinstance(seed000.worker.requests, flyte.Resources)
    seed003 = MPIJob(worker=Worker(replicas=2, requests=flyte.Resources(cpu="1", memory="2Gi"),
                                   image="my-custom-mpi-image:latest"),
                     launcher=Launcher(requests=flyte.Resources(cpu="0.5", memory="1Gi"),
                                       image="my-custom-mpi-image:latest"), slots=1)
    assert seed003.num_procs == 2
    horovod003 = HorovodJob(worker=Worker(replicas=4, requests={"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"},
                                          image="my-horovod-gpu-image:latest", restart_policy=RestartPolicy.FAILURE),
                            launcher=Launcher(requests={"cpu": "1", "memory": "2Gi"}), slots=1, verbose=True,
                            log_level="DEBUG", elastic_timeout=1800)
    assert horovod003.num_procs == 4
    policy = RunPolicy(clean_pod_policy=CleanPodPolicy.RUNNING, ttl_seconds_after_finished=60,
                       active_deadline_seconds=600, backoff_limit=2)
    assert MPIJob(worker=Worker(replicas=3), run_policy=policy).run_policy is policy


def test_positional_order_is_flytekits():
    launcher, worker = Launcher(), Worker(replicas=2)
    assert MPIJob(launcher, worker, None, 3).num_procs == 6  # MPIJob(launcher, worker, run_policy, slots)
    assert HorovodJob(worker, launcher, None, 2).num_procs == 4  # HorovodJob(worker, launcher, run_policy, slots)


@pytest.mark.parametrize(("build", "message"), [
    (lambda: MPIJob(slots=0), r"MPIJob.slots: ranks per worker must be >= 1"),
    (lambda: MPIJob(slots="2"), r"MPIJob.slots: expected an int"),
    (lambda: Worker(replicas=0), r"Worker.replicas: must be >= 1"),
    (lambda: Launcher(replicas=2), r"Launcher.replicas: an MPI job has exactly 1 launcher"),
    (lambda: Launcher(command="mpirun -np 2 x"), r"Launcher.command: expected a non-empty list of strings"),
    (lambda: Worker(image=""), r"Worker.image"),
    (lambda: Worker(requests={"cpus": "1"}), r"Worker"),
    (lambda: Worker(restart_policy="Never"), r"Worker.restart_policy: expected a RestartPolicy"),
    (lambda: MPIJob(worker=Launcher()), r"MPIJob.worker: expected a Worker"),
    (lambda: MPIJob(run_policy={"backoff_limit": 1}), r"MPIJob.run_policy: expected a RunPolicy"),
    (lambda: RunPolicy(active_deadline_seconds=0), r"RunPolicy.active_deadline_seconds: must be >= 1"),
    (lambda: HorovodJob(log_level="LOUD"), r"HorovodJob.log_level: 'LOUD'; allowed: TRACE, DEBUG, INFO"),
    (lambda: HorovodJob(elastic_timeout=0), r"HorovodJob.elastic_timeout: must be >= 1"),
    (lambda: MPIJob(slot=2), r"unknown argument\(s\) 'slot' \(did you mean 'slots'\?\)"),
])
def test_bad_values_fail_in_the_constructor_naming_the_field(build, message):
    with pytest.raises((TypeError, ValueError), match=message):
        build()


def test_deprecated_counts_still_work_with_a_warning_naming_the_replacement():
    with pytest.warns(DeprecationWarning, match=r"MPIJob.num_workers is deprecated; use worker=Worker\(replicas=3\)"):
        job = MPIJob(num_workers=3, slots=2)
    assert job.num_procs == 6
    with pytest.warns(DeprecationWarning, match=r"num_launcher_replicas is deprecated; use launcher=Launcher"):
        MPIJob(num_launcher_replicas=1)
    with pytest.raises(ValueError, match="give worker.replicas or the deprecated num_workers, not both"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            MPIJob(num_workers=2, worker=Worker(replicas=2))
    with pytest.raises(ValueError, match="num_launcher_replicas: an MPI job has exactly 1 launcher"):
        MPIJob(num_launcher_replicas=2)


def test_environments_pick_the_mpi_templates():
    mpi = flyte.TaskEnvironment(name="cfg_mpi", plugin_config=MPIJob())
    horovod = flyte.TaskEnvironment(name="cfg_hvd", plugin_config=HorovodJob())

    @mpi.task
    def a() -> None: ...

    @horovod.task
    def b() -> None: ...

    assert type(a) is MPIFunctionTask and type(b) is HorovodFunctionTask
    assert type(a.override(plugin_config=HorovodJob())) is HorovodFunctionTask


def test_local_command_runs_every_rank_of_this_python(tmp_path):
    command = local_command(MPIJob(worker=Worker(replicas=2), slots=3), str(tmp_path))
    assert command[1:3] == ["-np", "6"] and command[-4:] == [sys.executable, "-m", "flyteplugins.mpi._rank",
                                                             str(tmp_path)]
    assert local_command(MPIJob(launcher=Launcher(command=["sh", "x.sh"])), str(tmp_path)) == ["sh", "x.sh"]


def test_horovodrun_command_is_what_the_kubernetes_launcher_runs():
    config = HorovodJob(worker=Worker(replicas=4), slots=2, log_level="debug", elastic_timeout=1800, verbose=True)
    assert horovodrun_command(config) == [
        "horovodrun", "-np", "8", "--log-level", "DEBUG", "--network-interface", "eth0", "--min-np", "8",
        "--max-np", "8", "--slots-per-host", "2", "--host-discovery-script", "/etc/mpi/discover_hosts.sh",
        "--elastic-timeout", "1800", "--verbose"]
    program = ["python", "-m", "flyte.runtime", "--task", "t"]
    assert kubernetes_launcher_command(config, program) == horovodrun_command(config) + program
    quiet = HorovodJob(worker=Worker(replicas=1))
    assert "--verbose" not in horovodrun_command(quiet)


def test_mpirun_command_of_the_kubernetes_launcher_is_flytekits():
    program = ["python", "-m", "flyte.runtime"]
    command = kubernetes_launcher_command(MPIJob(worker=Worker(replicas=2), slots=2), program)
    assert command[:2] == ["mpirun", "--allow-run-as-root"] and command[-5:-3] == ["-np", "4"]
    assert command[-3:] == program and "NCCL_DEBUG=INFO" in command


def test_importing_the_configs_loads_no_mpi():
    code = ("import sys; import flyte; from flyteplugins.mpi.task import MPIJob, HorovodJob; "
            "assert 'mpi4py' not in sys.modules and 'horovod' not in sys.modules, 'mpi imported'; "
            "assert 'kubernetes_asyncio' not in sys.modules and 'obstore' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
