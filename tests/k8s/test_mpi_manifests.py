"""MPIJob manifests of MPI and Horovod tasks, for the MPI operator (``kubeflow.org/v2beta1``) and the training
operator (``kubeflow.org/v1``), each validated against its operator's CRD in ``../shared/k8s-crds`` (the
openAPIV3Schema with unknown fields rejected, through the API server double's validator)."""

from __future__ import annotations

import pytest
from _k8s_testkit import CRDS

import flyte
import flyte.kubernetes
from flyte import _initialize
from flyteplugins.mpi.task import CleanPodPolicy, HorovodJob, Launcher, MPIJob, RestartPolicy, RunPolicy, Worker

pytestmark = [pytest.mark.k8s, pytest.mark.mpi, pytest.mark.skipif(not CRDS.is_dir(), reason="needs ../shared/k8s-crds")]


@pytest.fixture(scope="module")
def validators():
    from kube_double.crds import load_crds

    return {(rt.group, rt.kind): rt.validators for rt in load_crds(str(CRDS))}


def _check(validators, manifest: dict) -> None:
    group, version = manifest["apiVersion"].split("/")
    validator = validators[(group, manifest["kind"])][version]
    assert validator.unknown(manifest) == [], f"fields the CRD does not have: {validator.unknown(manifest)}"
    assert [e for e in validator.errors(manifest) if "'metadata'" not in e[1]] == []


def _manifest(config, settings: dict | None = None) -> dict:
    env = flyte.TaskEnvironment(name="golden", plugin_config=config, image="ghcr.io/acme/mpi:1",
                                env_vars={"MODE": "fast"}, secrets=[flyte.Secret(key="token", group="creds")])

    def work(x: int) -> int:
        return x

    flyte.init(kubernetes={"storage": "s3://b/p", "storage_env_secret": "s3-creds", **(settings or {})})
    try:
        [manifest] = flyte.kubernetes.dry_run(env.task(work), 1, run_name="golden")
    finally:
        _initialize._current = None
    return manifest


def _container(spec: dict, replica: str) -> dict:
    [container] = spec["mpiReplicaSpecs"][replica]["template"]["spec"]["containers"]
    return container


CONFIGS = [
    MPIJob(worker=Worker(replicas=2, requests={"cpu": "1", "memory": "2Gi"}, image="ghcr.io/acme/worker:1"),
           launcher=Launcher(requests={"cpu": "0.5", "memory": "1Gi"}), slots=2,
           run_policy=RunPolicy(clean_pod_policy=CleanPodPolicy.ALL, ttl_seconds_after_finished=30,
                                active_deadline_seconds=600, backoff_limit=1)),
    HorovodJob(worker=Worker(replicas=4, restart_policy=RestartPolicy.FAILURE), slots=1, verbose=True,
               log_level="DEBUG", elastic_timeout=1800),
    MPIJob(launcher=Launcher(command=["mpirun", "-np", "2", "/opt/app/pi"]), worker=Worker(replicas=2,
                                                                                          command=["sleep", "1d"])),
]


@pytest.mark.parametrize("operator", ["mpi-operator", "training-operator"])
@pytest.mark.parametrize("index", range(len(CONFIGS)))
def test_mpi_job_validates_against_its_operators_crd(validators, operator, index):
    manifest = _manifest(CONFIGS[index], {"mpi_operator": operator})
    assert manifest["kind"] == "MPIJob"
    assert manifest["apiVersion"] == ("kubeflow.org/v2beta1" if operator == "mpi-operator" else "kubeflow.org/v1")
    _check(validators, manifest)
    spec = manifest["spec"]
    assert ("mpiImplementation" in spec) == (operator == "mpi-operator")
    assert spec["mpiReplicaSpecs"]["Launcher"]["replicas"] == 1
    launcher, worker = _container(spec, "Launcher"), _container(spec, "Worker")
    assert launcher["name"] == worker["name"] == "mpi"
    labels = spec["mpiReplicaSpecs"]["Launcher"]["template"]["metadata"]["labels"]
    assert labels["flyte.org/primary"] == "true"  # the launcher's log and exit are the call's


def test_mpi_job_carries_the_configs_sizes_resources_and_policy(validators):
    spec = _manifest(CONFIGS[0])["spec"]
    assert spec["slotsPerWorker"] == 2 and spec["mpiReplicaSpecs"]["Worker"]["replicas"] == 2
    assert spec["runPolicy"] == {"cleanPodPolicy": "All", "ttlSecondsAfterFinished": 30,
                                 "activeDeadlineSeconds": 600, "backoffLimit": 1}
    launcher, worker = _container(spec, "Launcher"), _container(spec, "Worker")
    assert launcher["resources"]["requests"] == {"cpu": "0.5", "memory": "1Gi"}
    assert worker["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}
    assert worker["image"] == "ghcr.io/acme/worker:1" and launcher["image"] == "ghcr.io/acme/mpi:1"
    assert worker["command"] == ["/usr/sbin/sshd", "-De"]
    command = launcher["command"]
    assert command[:2] == ["mpirun", "--allow-run-as-root"] and launcher["args"] == []
    runtime = command.index("python")
    assert command[runtime - 2:runtime] == ["-np", "4"] and command[runtime:runtime + 3] == ["python", "-m",
                                                                                             "flyte.runtime"]
    exported = {command[i + 1] for i, part in enumerate(command[:runtime]) if part == "-x"}
    # what ranks on the workers need (they do not inherit the pods' environment): the tier's settings, the task's
    # variables, the secret's variable and the store's credentials
    assert {"FLYTE_K8S_SETTINGS", "MODE", "CREDS_TOKEN", "AWS_ACCESS_KEY_ID", "PATH", "LD_LIBRARY_PATH"} <= exported
    env = {e["name"]: e for e in launcher["env"]}
    assert env["CREDS_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "creds", "key": "token"}
    assert env["PRTE_MCA_prte_default_hostfile"]["value"] == "/etc/mpi/hostfile"
    assert "token" not in str(spec).replace("'key': 'token'", "")  # secrets by reference only


def test_horovod_job_launches_with_horovodrun(validators):
    spec = _manifest(CONFIGS[1])["spec"]
    command = _container(spec, "Launcher")["command"]
    assert command[:3] == ["horovodrun", "-np", "4"] and "--verbose" in command
    assert command[command.index("--host-discovery-script") + 1] == "/etc/mpi/discover_hosts.sh"
    assert spec["mpiReplicaSpecs"]["Worker"]["restartPolicy"] == "OnFailure"
    env = {e["name"]: e.get("value") for e in _container(spec, "Launcher")["env"]}
    assert env["HOROVOD_LOG_LEVEL"] == "DEBUG" and env["HOROVOD_ELASTIC_TIMEOUT"] == "1800"


def test_launcher_and_worker_commands_are_the_users_when_given(validators):
    spec = _manifest(CONFIGS[2])["spec"]
    assert _container(spec, "Launcher")["command"] == ["mpirun", "-np", "2", "/opt/app/pi"]
    assert _container(spec, "Worker")["command"] == ["sleep", "1d"]


def test_unknown_mpi_operator_setting_names_the_allowed_values():
    from flyte._k8s.settings import KubernetesSettings

    with pytest.raises(ValueError, match="kubernetes.mpi_operator: 'v3'; allowed: 'mpi-operator'"):
        KubernetesSettings(mpi_operator="v3")
