"""Issue 10.7: errors a new user meets name the class or task, the field, and what is allowed."""

from __future__ import annotations

import threading

import pytest

import flyte


@pytest.mark.parametrize(("make", "wrong", "suggested"), [
    (lambda: __import__("flyteplugins.spark.task", fromlist=["Spark"]).Spark(sparkconf={}), "sparkconf",
     "spark_conf"),
    (lambda: __import__("flyteplugins.dask.task", fromlist=["WorkerGroup"]).WorkerGroup(number_of_worker=2),
     "number_of_worker", "number_of_workers"),
    (lambda: __import__("flyteplugins.ray.task", fromlist=["RayJobConfig"]).RayJobConfig(worker_node_configs=[]),
     "worker_node_configs", "worker_node_config"),
    (lambda: __import__("flyteplugins.pytorch.task", fromlist=["Elastic"]).Elastic(nproc_pernode=2),
     "nproc_pernode", "nproc_per_node"),
    (lambda: flyte.Resources(cpus="1"), "cpus", "cpu"),
])
def test_an_unknown_keyword_names_the_class_the_likely_field_and_the_allowed_ones(make, wrong, suggested):
    with pytest.raises(TypeError) as caught:
        make()
    message = str(caught.value)
    assert message.split("(")[0] in {"Spark", "WorkerGroup", "RayJobConfig", "Elastic", "Resources"}, message
    assert repr(wrong) in message and f"did you mean {suggested!r}" in message and "allowed:" in message


def test_pytorch_takes_the_v1_requests_spelling_the_seeds_use():
    from flyteplugins.pytorch.task import Master, PyTorch, Worker

    config = PyTorch(master=Master(requests={"cpu": "1"}), worker=Worker(replicas=2, requests={"cpu": "2"},
                                                                         limits={"memory": "4Gi"}))
    assert config.worker.requests == flyte.Resources(cpu="2")
    assert config.worker.limits == flyte.Resources(memory="4Gi")
    with pytest.raises(ValueError, match=r"Worker.requests\['cpux'\]: unknown resource; allowed: cpu"):
        Worker(requests={"cpux": "2"})


def test_a_none_spark_setting_says_to_leave_the_key_out():
    from flyteplugins.spark.task import Spark

    with pytest.raises(TypeError) as caught:
        Spark(spark_conf={"spark.executor.memory": None})
    assert "leave the key out" in str(caught.value) and "'None'" not in str(caught.value)


@pytest.mark.torch
def test_an_unencodable_torch_output_names_the_task_and_the_output():
    from flyteplugins.pytorch.task import Elastic

    env = flyte.TaskEnvironment(name="torch_msgs", plugin_config=Elastic(nproc_per_node=1))

    @env.task
    def returns_a_lock() -> object:
        return threading.Lock()

    with pytest.raises(TypeError) as caught:
        flyte.run(returns_a_lock)
    message = str(caught.value)
    assert "torch_msgs.returns_a_lock" in message and "output" in message and "lock" in message.lower(), message
