"""The Dask config without an engine: validation messages, both resource spellings, cluster sizing, registration,
the serialized config, and that importing the plugin loads no engine."""

from __future__ import annotations

import subprocess
import sys

import msgspec
import pytest

import flyte
from flyteplugins.dask.task import Dask, DaskTask, EmbeddedSpec, Scheduler, WorkerGroup


def test_defaults_size_one_single_threaded_worker():
    assert Dask().embedded_spec() == EmbeddedSpec(workers=1, threads_per_worker=1, memory_limit="auto",
                                                  dashboard=True)


def test_worker_resources_size_threads_and_memory():
    config = Dask(workers=WorkerGroup(number_of_workers=3, resources=flyte.Resources(cpu="1500m", memory="3Gi")))
    assert config.embedded_spec() == EmbeddedSpec(3, 2, 3 * 2**30, True)


def test_a_request_limit_pair_sizes_by_the_limit():
    config = Dask(workers=WorkerGroup(resources=flyte.Resources(cpu=("1", "2"), memory=("1Gi", "2Gi"))))
    assert config.embedded_spec()[1:3] == (2, 2 * 2**30)


def test_v1_requests_and_limits_spelling():
    group = WorkerGroup(number_of_workers=2, requests={"cpu": "1", "memory": "2Gi"}, limits={"cpu": "2"})
    assert group.effective_resources() == flyte.Resources(cpu=("1", "2"), memory="2Gi")
    assert Dask(workers=group).embedded_spec()[:3] == (2, 2, 2 * 2**30)
    scheduler = Scheduler(requests={"cpu": "0.5", "memory": "1Gi"})
    assert scheduler.effective_resources() == flyte.Resources(cpu="0.5", memory="1Gi")


def test_scheduler_resources_do_not_change_the_embedded_cluster():
    small = Dask(scheduler=Scheduler(resources=flyte.Resources(cpu="1")))
    big = Dask(scheduler=Scheduler(resources=flyte.Resources(cpu="4", memory="8Gi")))
    assert small.embedded_spec() == big.embedded_spec()


@pytest.mark.parametrize(("build", "message"), [
    (lambda: WorkerGroup(number_of_workers=0), r"WorkerGroup.number_of_workers: expected an int >= 1, got 0"),
    (lambda: WorkerGroup(number_of_workers=True), r"WorkerGroup.number_of_workers"),
    (lambda: WorkerGroup(requests={"cpus": "1"}), r"WorkerGroup.requests\['cpus'\]: unknown resource; allowed: cpu"),
    (lambda: WorkerGroup(limits={"memory": "lots"}), r"WorkerGroup.limits\['memory'\]: 'lots' is not a quantity"),
    (lambda: Scheduler(requests={"cpu": "2"}, limits={"cpu": "1"}), r"Scheduler: .*request '2' exceeds limit '1'"),
    (lambda: Scheduler(resources=flyte.Resources(cpu="1"), requests={"cpu": "1"}),
     r"Scheduler: give resources=flyte.Resources\(...\) or the v1 requests=/limits= maps, not both"),
    (lambda: WorkerGroup(image=""), r"WorkerGroup.image: expected an image name"),
    (lambda: Dask(scheduler_address="localhost:8786"), r"Dask.scheduler_address: 'localhost:8786' is not a "
                                                       r"scheduler address; expected '<protocol>://<host>:<port>'"),
    (lambda: Dask(scheduler_address="tcp://host:99999"), r"Dask.scheduler_address: port 99999 is out of range"),
])
def test_invalid_values_name_the_field(build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build()


def test_wrong_nested_types_name_the_field():
    with pytest.raises(TypeError, match=r"Dask.workers: expected a WorkerGroup"):
        Dask(workers={"number_of_workers": 2})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"WorkerGroup.resources: expected flyte.Resources"):
        WorkerGroup(resources={"cpu": "1"})  # type: ignore[arg-type]


def test_configs_are_frozen():
    with pytest.raises(AttributeError):
        Dask().dashboard = False  # type: ignore[misc]


def test_environment_uses_the_dask_template():
    env = flyte.TaskEnvironment(name="dask_cfg", plugin_config=Dask(workers=WorkerGroup(number_of_workers=2)))

    @env.task
    async def body() -> None:
        return None

    assert isinstance(body, DaskTask) and body.task_type == "dask"
    assert body.custom_config() == {
        "scheduler": {"image": None, "resources": {}},
        "workers": {"numberOfWorkers": 2, "image": None, "resources": {}},
    }
    moved = body.override(plugin_config=Dask(scheduler_address="tcp://10.0.0.5:8786"))
    assert isinstance(moved, DaskTask) and moved.custom_config()["schedulerAddress"] == "tcp://10.0.0.5:8786"


def test_custom_config_has_kubernetes_resources():
    config = Dask(scheduler=Scheduler(image="img:1", requests={"cpu": "500m", "memory": "1Gi"}),
                  workers=WorkerGroup(number_of_workers=4, resources=flyte.Resources(cpu=("1", "2"), memory="4Gi")))
    env = flyte.TaskEnvironment(name="dask_k8s", plugin_config=config)
    body = env.task(lambda: None)
    assert body.custom_config() == {
        "scheduler": {"image": "img:1", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                                                       "limits": {"cpu": "500m", "memory": "1Gi"}}},
        "workers": {"numberOfWorkers": 4, "image": None,
                    "resources": {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}},
    }
    assert msgspec.json.decode(msgspec.json.encode(body.custom_config())) == body.custom_config()


def test_reusable_environment_is_rejected():
    with pytest.raises(ValueError, match="does not support reuse"):
        flyte.TaskEnvironment(name="dask_reuse", plugin_config=Dask(), reusable=flyte.ReusePolicy(replicas=1))


def test_importing_the_plugin_loads_no_engine():
    code = ("import sys, flyte; from flyteplugins.dask.task import Dask, Scheduler, WorkerGroup, DaskTask; "
            "import flyteplugins.dask; "
            "print(sorted(m for m in ('dask', 'distributed', 'pyspark', 'ray', 'torch', 'kubernetes_asyncio') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
