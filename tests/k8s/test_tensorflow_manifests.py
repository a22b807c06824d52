"""TFJob manifests of TensorFlow tasks for a matrix of configs, each validated against the training operator's CRD
(``../shared/k8s-crds/training-operator-v1``, unknown fields rejected, through the API server double's validator) and
the operator's own rules the schema does not hold; and ``flyte run --dry-run`` printing one."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from _k8s_testkit import CRDS

import flyte
import flyte.kubernetes
from flyteplugins.tensorflow.task import (
    PS,
    Chief,
    CleanPodPolicy,
    Evaluator,
    RestartPolicy,
    RunPolicy,
    TfJob,
    Worker,
)

pytestmark = [pytest.mark.k8s, pytest.mark.skipif(not CRDS.is_dir(), reason="needs ../shared/k8s-crds")]


@pytest.fixture(scope="module")
def validator():
    from kube_double.crds import load_crds

    [tfjobs] = [rt for rt in load_crds(str(CRDS)) if (rt.group, rt.kind) == ("kubeflow.org", "TFJob")]
    return tfjobs.validators["v1"]


def _check(validator, manifest: dict) -> dict:
    """The manifest against the CRD and the operator's webhook (validateTFReplicaSpecs); its replica specs."""
    assert (manifest["apiVersion"], manifest["kind"]) == ("kubeflow.org/v1", "TFJob")
    assert validator.unknown(manifest) == [], f"fields the CRD does not have: {validator.unknown(manifest)}"
    assert [e for e in validator.errors(manifest) if "'metadata'" not in e[1]] == []
    name = manifest["metadata"]["name"]
    assert len(name) <= 50 and name[0].isalpha()  # <name>-evaluator-99 stays a DNS label
    specs = manifest["spec"]["tfReplicaSpecs"]
    assert set(specs) <= {"Chief", "PS", "Worker", "Evaluator"} and specs
    for spec in specs.values():
        containers = spec["template"]["spec"]["containers"]
        assert any(c["name"] == "tensorflow" for c in containers)  # the container the operator gives TF_CONFIG
        assert all(c.get("image") for c in containers)
        assert spec["template"]["spec"]["restartPolicy"] == spec["restartPolicy"]
    return specs


def _manifest(plugin_config, *, run_name: str = "golden", pod_template=None) -> dict:
    env = flyte.TaskEnvironment(name="golden", plugin_config=plugin_config, image="ghcr.io/acme/app:2",
                                env_vars={"MODE": "fast"}, secrets=[flyte.Secret(key="token", group="creds")],
                                resources=flyte.Resources(cpu="1", memory="1Gi"), pod_template=pod_template)

    async def train(epochs: int) -> float:
        return 0.0

    [manifest] = flyte.kubernetes.dry_run(env.task(train), 1, run_name=run_name)
    return manifest


def _container(spec: dict) -> dict:
    return next(c for c in spec["template"]["spec"]["containers"] if c["name"] == "tensorflow")


def _env(spec: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in _container(spec)["env"]}


def test_every_replica_group_with_its_image_resources_and_restart_policy(validator):
    config = TfJob(chief=Chief(requests=flyte.Resources(cpu="2", memory="2Gi")),
                   ps=PS(replicas=2, image="ghcr.io/acme/ps:1", restart_policy=RestartPolicy.ALWAYS),
                   worker=Worker(replicas=3, limits={"cpu": "4", "memory": "8Gi"},
                                 restart_policy=RestartPolicy.FAILURE),
                   evaluator=Evaluator(),
                   run_policy=RunPolicy(clean_pod_policy=CleanPodPolicy.RUNNING, ttl_seconds_after_finished=120,
                                        active_deadline_seconds=3600, backoff_limit=2))
    manifest = _manifest(config)
    specs = _check(validator, manifest)
    assert list(specs) == ["Chief", "PS", "Worker", "Evaluator"]
    assert [specs[k]["replicas"] for k in specs] == [1, 2, 3, 1]
    assert [specs[k]["restartPolicy"] for k in specs] == ["Never", "Always", "OnFailure", "Never"]
    assert manifest["spec"]["runPolicy"] == {"cleanPodPolicy": "Running", "ttlSecondsAfterFinished": 120,
                                             "activeDeadlineSeconds": 3600, "backoffLimit": 2}
    assert _container(specs["PS"])["image"] == "ghcr.io/acme/ps:1"
    assert _container(specs["Worker"])["image"] == _container(specs["Chief"])["image"] == "ghcr.io/acme/app:2"
    assert _container(specs["Chief"])["resources"]["requests"] == {"cpu": "2", "memory": "2Gi"}
    assert _container(specs["Worker"])["resources"]["limits"] == {"cpu": "4", "memory": "8Gi"}
    assert _container(specs["Evaluator"])["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"},
                                                           "limits": {"cpu": "1", "memory": "1Gi"}}  # the task's
    for name, spec in specs.items():
        env = _env(spec)
        assert env["FLYTE_TF_REPLICA"] == name.lower()  # the runtime there runs the function as this replica
        assert "TF_CONFIG" not in env  # the operator's to give
        assert env["MODE"] == "fast" and env["CREDS_TOKEN"] == {"secretKeyRef": {"name": "creds", "key": "token"}}
        assert _container(spec)["command"] == ["python", "-m", "flyte.runtime"]
        labels = spec["template"]["metadata"]["labels"]
        assert (labels.get("flyte.org/primary") == "true") == (name == "Chief")  # the chief's value is the task's


def test_workers_only_worker_pods_are_primary_and_a_single_replica_is_still_a_tfjob(validator):
    specs = _check(validator, _manifest(TfJob(worker=Worker(replicas=2))))
    assert list(specs) == ["Worker"] and specs["Worker"]["replicas"] == 2
    assert specs["Worker"]["template"]["metadata"]["labels"]["flyte.org/primary"] == "true"
    specs = _check(validator, _manifest(TfJob()))
    assert list(specs) == ["Worker"] and specs["Worker"]["replicas"] == 1
    assert "ttlSecondsAfterFinished" in _manifest(TfJob())["spec"]["runPolicy"]  # the settings' TTL by default


def test_long_names_stay_within_the_operators_dns_limits(validator):
    manifest = _manifest(TfJob(worker=Worker(replicas=2), evaluator=Evaluator()), run_name="r" + "x" * 80)
    _check(validator, manifest)
    assert len(f"{manifest['metadata']['name']}-evaluator-0") <= 63


def test_the_tasks_pod_template_is_kept_and_the_group_image_lands_on_the_tensorflow_container(validator):
    template = flyte.PodTemplate(primary_container_name="tensorflow", labels={"team": "ml"}, pod_spec={
        "containers": [{"name": "sidecar", "image": "busybox:1"}, {"name": "tensorflow"}],
        "tolerations": [{"key": "gpu", "operator": "Exists"}]})
    specs = _check(validator, _manifest(TfJob(worker=Worker(replicas=2, image="ghcr.io/acme/tf:3")),
                                        pod_template=template))
    pod = specs["Worker"]["template"]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["sidecar", "tensorflow"]
    assert pod["spec"]["containers"][0]["image"] == "busybox:1" and _container(specs["Worker"])["image"] == \
        "ghcr.io/acme/tf:3"
    assert pod["spec"]["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    assert pod["metadata"]["labels"]["team"] == "ml"


def test_dry_run_cli_prints_the_tfjob(tmp_path, validator):
    path = tmp_path / "tf_dry.py"
    path.write_text("import flyte\nfrom flyteplugins.tensorflow.task import Chief, PS, TfJob, Worker\n"
                    "env = flyte.TaskEnvironment(name='t', plugin_config=TfJob(chief=Chief(), ps=PS(), "
                    "worker=Worker(replicas=2)))\n\n\n@env.task\nasync def train(epochs: int) -> float:\n"
                    "    return 0.0\n")
    result = subprocess.run([sys.executable, "-m", "flyte", "run", "--dry-run", str(path), "train", "--epochs", "2"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    [manifest] = [d for d in yaml.safe_load_all(result.stdout) if d]
    specs = _check(validator, manifest)
    assert list(specs) == ["Chief", "PS", "Worker"] and specs["Worker"]["replicas"] == 2
