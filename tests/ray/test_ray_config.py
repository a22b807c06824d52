"""RayJobConfig and friends: validation at construction, sizing of the local instance, registration, imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import flyte
from flyte.extend import TaskPluginRegistry
from flyteplugins.ray._runtime_env import job_runtime_env
from flyteplugins.ray._sizing import local_size
from flyteplugins.ray.task import HeadNodeConfig, RayFunctionTask, RayJobConfig, WorkerNodeConfig


def test_import_does_not_load_engines():
    code = (
        "import sys, flyte, flyteplugins.ray, flyteplugins.ray.task\n"
        "from flyteplugins.ray.task import RayJobConfig, HeadNodeConfig, WorkerNodeConfig\n"
        "bad = [m for m in ('ray', 'pyspark', 'torch', 'distributed', 'kubernetes_asyncio') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_seed_fields_and_defaults():
    config = RayJobConfig(
        head_node_config=HeadNodeConfig(ray_start_params={"log-color": "True"}),
        worker_node_config=[WorkerNodeConfig(group_name="ray-group", replicas=2)],
        runtime_env={"pip": ["numpy", "pandas"]},
    )
    assert config.enable_autoscaling is False and config.address is None
    assert config.shutdown_after_job_finishes is False and config.ttl_seconds_after_finished is None
    group = config.worker_node_config[0]
    assert (group.min_replicas, group.max_replicas, group.pod_template, group.requests, group.limits) == (None,) * 5


@pytest.mark.parametrize(
    ("build", "error", "words"),
    [
        (lambda: WorkerNodeConfig(group_name="g", replicas=-1), ValueError, ["replicas", ">= 0"]),
        (lambda: WorkerNodeConfig(group_name="g", replicas=True), TypeError, ["replicas", "integer"]),
        (lambda: WorkerNodeConfig(group_name="g", replicas=2, min_replicas=3, max_replicas=1), ValueError,
         ["min_replicas", "max_replicas"]),
        (lambda: WorkerNodeConfig(group_name="g", replicas=5, max_replicas=3), ValueError, ["replicas", "max_replicas"]),
        (lambda: WorkerNodeConfig(group_name="g", replicas=0, min_replicas=1), ValueError, ["replicas", "min_replicas"]),
        (lambda: WorkerNodeConfig(group_name="g", ray_start_params={"num-cpus": 2}), TypeError,
         ["ray_start_params['num-cpus']", "strings", "'2'"]),
        (lambda: HeadNodeConfig(ray_start_params={"--num-cpus": "2"}), ValueError, ["ray_start_params", "without dashes"]),
        (lambda: HeadNodeConfig(ray_start_params=["num-cpus"]), TypeError, ["HeadNodeConfig.ray_start_params"]),
        (lambda: WorkerNodeConfig(group_name=""), ValueError, ["group_name"]),
        (lambda: HeadNodeConfig(requests={"cpus": "1"}), ValueError, ["HeadNodeConfig.requests", "cpus"]),
        (lambda: HeadNodeConfig(requests={"cpu": "lots"}), ValueError, ["HeadNodeConfig.requests", "quantity"]),
        (lambda: HeadNodeConfig(pod_template=3), TypeError, ["pod_template"]),
        (lambda: RayJobConfig(ttl_seconds_after_finished=60), ValueError,
         ["ttl_seconds_after_finished", "shutdown_after_job_finishes"]),
        (lambda: RayJobConfig(shutdown_after_job_finishes=True, ttl_seconds_after_finished=-5), ValueError,
         ["ttl_seconds_after_finished", ">= 0"]),
        (lambda: RayJobConfig(address="not an address"), ValueError, ["address", "host:port"]),
        (lambda: RayJobConfig(worker_node_config=[WorkerNodeConfig(group_name="a"), WorkerNodeConfig(group_name="a")]),
         ValueError, ["worker_node_config", "unique", "'a'"]),
        (lambda: RayJobConfig(worker_node_config=[{"group_name": "a"}]), TypeError, ["worker_node_config"]),
        (lambda: RayJobConfig(runtime_env={"env_vars": {"A": 1}}), TypeError, ["runtime_env['env_vars']['A']"]),
        (lambda: RayJobConfig(runtime_env={"working_dir": 3}), TypeError, ["runtime_env['working_dir']"]),
        (lambda: RayJobConfig(enable_autoscaling="yes"), TypeError, ["enable_autoscaling"]),
    ],
)
def test_bad_values_raise_at_construction_naming_the_field(build, error, words):
    with pytest.raises(error) as info:
        build()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_good_addresses_and_resource_spellings():
    for address in ("auto", "127.0.0.1:6379", "head.svc:6379", "ray://127.0.0.1:10001", "ray://head"):
        assert RayJobConfig(address=address).address == address
    head = HeadNodeConfig(requests={"cpu": "1", "memory": "2Gi"}, limits=flyte.Resources(cpu="2"))
    assert isinstance(head.requests, flyte.Resources) and head.requests.cpu == "1"
    assert RayJobConfig(shutdown_after_job_finishes=True, ttl_seconds_after_finished=0).ttl_seconds_after_finished == 0


def test_sizing_adds_up_nodes_and_caps_at_the_machine():
    cores = os.cpu_count() or 1
    one = local_size(RayJobConfig(worker_node_config=[WorkerNodeConfig(group_name="g", replicas=1)]))
    assert one.num_cpus == 1  # the head counts no CPUs when workers exist
    two = local_size(RayJobConfig(worker_node_config=[WorkerNodeConfig(group_name="g", replicas=2)]))
    assert two.num_cpus == min(2, cores)
    assert local_size(RayJobConfig()).num_cpus == 1  # a lone head runs the work
    many = local_size(RayJobConfig(worker_node_config=[WorkerNodeConfig(group_name="g", replicas=500)]))
    assert many.num_cpus == cores
    half = local_size(RayJobConfig(worker_node_config=[
        WorkerNodeConfig(group_name="g", replicas=2, requests={"cpu": "500m", "memory": "1Gi"})]))
    assert half.num_cpus == 1 and half.memory == 2 * 2**30
    head_asks = local_size(RayJobConfig(head_node_config=HeadNodeConfig(requests={"cpu": "1", "memory": "1Gi"}),
                                        worker_node_config=[WorkerNodeConfig(group_name="g", replicas=0)]))
    assert head_asks.num_cpus == 1 and head_asks.memory == 2**30
    huge = local_size(RayJobConfig(head_node_config=HeadNodeConfig(requests={"memory": "100000Ti"})))
    assert huge.memory is not None and huge.memory < 100000 * 2**40
    params = local_size(RayJobConfig(
        head_node_config=HeadNodeConfig(ray_start_params={"num-cpus": "1", "include-dashboard": "true",
                                                          "object-store-memory": "100000000",
                                                          "resources": '{"disk": 1}'}),
        worker_node_config=[WorkerNodeConfig(group_name="g", replicas=1, ray_start_params={"num-cpus": "0",
                                                                                          "resources": '{"disk": 2}'})],
    ))
    assert params.num_cpus == 1 and params.include_dashboard and params.object_store_memory == 100_000_000
    assert json.loads(params.resources) == {"disk": 3.0}
    scaled = local_size(RayJobConfig(enable_autoscaling=True, worker_node_config=[
        WorkerNodeConfig(group_name="g", replicas=1, min_replicas=1, max_replicas=2)]))
    assert scaled.num_cpus == min(2, cores)  # sized for the most the cluster could grow to
    assert one != two and one == local_size(RayJobConfig(worker_node_config=[WorkerNodeConfig(group_name="x")]))


def test_bad_start_param_numbers_name_the_param():
    with pytest.raises(ValueError, match=r"WorkerNodeConfig\('g'\)\.ray_start_params\['num-cpus'\]"):
        local_size(RayJobConfig(worker_node_config=[WorkerNodeConfig(group_name="g",
                                                                     ray_start_params={"num-cpus": "two"})]))
    with pytest.raises(ValueError, match=r"HeadNodeConfig\.ray_start_params\['resources'\]"):
        local_size(RayJobConfig(head_node_config=HeadNodeConfig(ray_start_params={"resources": "[1]"})))


def test_runtime_env_gets_the_bundle():
    class Bundle:
        directory = "/b/dir"

        def __bool__(self):
            return True

    env, paths = job_runtime_env(None, Bundle(), local=True)
    assert json.loads(env) is None and paths == ("/b/dir",)
    env, paths = job_runtime_env({"env_vars": {"A": "1"}}, Bundle(), local=True)
    assert json.loads(env) == {"env_vars": {"A": "1"}, "working_dir": "/b/dir"} and paths == ()
    env, paths = job_runtime_env(None, Bundle(), local=False)
    assert json.loads(env) == {"working_dir": "/b/dir"} and paths == ()
    env, paths = job_runtime_env({"working_dir": "s3://x/y.zip"}, Bundle(), local=False)
    assert json.loads(env) == {"working_dir": "s3://x/y.zip"}


def test_registered_template_reuse_and_custom_config():
    assert TaskPluginRegistry.find(RayJobConfig) is RayFunctionTask
    config = RayJobConfig(
        head_node_config=HeadNodeConfig(ray_start_params={"num-cpus": "0"}),
        worker_node_config=[WorkerNodeConfig(group_name="w", replicas=2, min_replicas=1, max_replicas=3)],
        enable_autoscaling=True, runtime_env={"env_vars": {"A": "1"}}, shutdown_after_job_finishes=True,
        ttl_seconds_after_finished=30,
    )
    env = flyte.TaskEnvironment(name="ray_cfg", plugin_config=config, reusable=flyte.ReusePolicy(replicas=1))

    @env.task
    def f() -> int:
        return 1

    assert isinstance(f, RayFunctionTask) and f.task_type == "ray"
    custom = f.custom_config()
    assert custom["rayCluster"]["workerGroupSpec"] == [
        {"groupName": "w", "replicas": 2, "minReplicas": 1, "maxReplicas": 3, "rayStartParams": {}}]
    assert custom["rayCluster"]["headGroupSpec"]["rayStartParams"] == {"num-cpus": "0"}
    assert custom["rayCluster"]["enableAutoscaling"] is True and custom["ttlSecondsAfterFinished"] == 30
    assert json.loads(custom["runtimeEnv"]) == {"env_vars": {"A": "1"}}
    assert json.dumps(custom)  # serializable as it is
