"""Configs, the cluster and TF_CONFIG the replicas get, and error reports: no replica is started here."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import msgspec
import pytest

import flyte
from flyteplugins.tensorflow.task import (
    PS,
    Chief,
    CleanPodPolicy,
    Evaluator,
    RestartPolicy,
    RunPolicy,
    TensorflowFunctionTask,
    TfJob,
    TfJobError,
    Worker,
)


def test_importing_configs_loads_no_engine():
    code = (
        "import sys, flyte\n"
        "from flyteplugins.tensorflow.task import TfJob, Chief, PS, Worker, Evaluator, RunPolicy, CleanPodPolicy\n"
        "from flyteplugins.tensorflow import TfJob as Same\n"
        "env = flyte.TaskEnvironment(name='e', plugin_config=TfJob(worker=Worker(replicas=2)))\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'torch', 'pyspark', 'ray', 'distributed', 'kubernetes_asyncio',"
        " 'mpi4py', 'asyncssh', 'aiohttp', 'obstore') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Worker(replicas=-1), "Worker.replicas: must be >= 0, got -1"),
        (lambda: PS(replicas="2"), "PS.replicas: expected an int, got str"),
        (lambda: Chief(replicas=2), "Chief.replicas: a TensorFlow cluster has at most 1 chief, got 2"),
        (lambda: Evaluator(image=""), "Evaluator.image: expected a non-empty image name"),
        (lambda: Worker(requests=["cpu"]), "Worker.requests: expected flyte.Resources, a dict"),
        (lambda: Worker(restart_policy="Never"), "Worker.restart_policy: expected a RestartPolicy"),
        (lambda: TfJob(worker=Worker(replicas=0)), "TfJob.worker: a job needs a chief or at least one worker"),
        (lambda: TfJob(chief=Worker()), "TfJob.chief: expected a Chief, got Worker"),
        (lambda: TfJob(run_policy={"backoff_limit": 1}), "TfJob.run_policy: expected a RunPolicy or None"),
        (lambda: TfJob(workers=2), "TfJob(): unknown argument(s) 'workers' (did you mean 'worker'?)"),
        (lambda: RunPolicy(active_deadline_seconds=0), "RunPolicy.active_deadline_seconds: must be >= 1"),
    ],
)
def test_configs_reject_bad_values_naming_the_field(make, message):
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    assert message in str(info.value)


def test_config_defaults_and_spellings():
    job = TfJob()
    assert (job.chief.replicas, job.ps.replicas, job.worker.replicas, job.evaluator.replicas) == (0, 0, 1, 0)
    assert Chief().replicas == PS().replicas == Evaluator().replicas == 1  # a group you name is there
    # flytekit's order, and its v1 resource maps
    job = TfJob(Chief(replicas=0), PS(replicas=1), Worker("img:1", {"cpu": "1"}, {"cpu": "2"}, 3, RestartPolicy.NEVER),
                Evaluator(replicas=0), RunPolicy(CleanPodPolicy.ALL, 60))
    assert job.worker.image == "img:1" and job.worker.replicas == 3 and job.worker.restart_policy == RestartPolicy.NEVER
    assert job.worker.requests == flyte.Resources(cpu="1") and job.worker.limits == flyte.Resources(cpu="2")
    assert job.run_policy.clean_pod_policy == CleanPodPolicy.ALL and job.run_policy.ttl_seconds_after_finished == 60


def test_the_config_selects_the_tensorflow_template():
    config = TfJob(worker=Worker(replicas=2))
    env = flyte.TaskEnvironment(name="cfg", plugin_config=config)

    @env.task
    def train(x: int) -> int:
        return x

    assert isinstance(train, TensorflowFunctionTask) and train.task_type == "tensorflow"
    assert train.custom_config() == msgspec.to_builtins(config)
    assert isinstance(train.override(plugin_config=TfJob(chief=Chief())), TensorflowFunctionTask)
    with pytest.raises(ValueError, match="does not support reuse"):
        flyte.TaskEnvironment(name="r", plugin_config=config, reusable=flyte.ReusePolicy(replicas=1))


def test_cluster_spec_tf_config_and_primary():
    from flyteplugins.tensorflow._cluster import (
        Replica,
        cluster_spec,
        distributed,
        primary_of,
        replicas_of,
        serves,
        tf_config,
    )

    job = TfJob(chief=Chief(), ps=PS(replicas=2), worker=Worker(replicas=2), evaluator=Evaluator())
    replicas = replicas_of(job)
    assert [str(r) for r in replicas] == ["chief 0", "ps 0", "ps 1", "worker 0", "worker 1", "evaluator 0"]
    cluster = cluster_spec({r: f"h:{i}" for i, r in enumerate(replicas)})
    assert cluster == {"chief": ["h:0"], "ps": ["h:1", "h:2"], "worker": ["h:3", "h:4"]}  # no evaluator
    config = json.loads(tf_config(cluster, Replica("evaluator", 0)))
    assert config == {"cluster": cluster, "task": {"type": "evaluator", "index": 0}, "environment": "cloud"}
    assert primary_of(job) == Replica("chief", 0) and primary_of(TfJob(worker=Worker(replicas=3))) == \
        Replica("worker", 0)
    assert [serves(job, r) for r in replicas] == [False, True, True, True, True, False]  # ParameterServerStrategy
    assert not serves(TfJob(chief=Chief(), worker=Worker(replicas=2)), Replica("worker", 1))  # collective peers
    assert distributed(job) and not distributed(TfJob()) and not distributed(TfJob(chief=Chief(), worker=Worker(
        replicas=0)))


def test_free_ports_are_distinct_and_bindable():
    from flyteplugins.tensorflow._cluster import free_ports

    ports = free_ports(6)
    assert len(set(ports)) == 6
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("", port))


def test_a_process_knows_which_replica_it_is():
    from flyteplugins.tensorflow._cluster import REPLICA_ENV, identity_from

    assert identity_from({"TF_CONFIG": "{}"}) is None  # TF_CONFIG alone: someone else's job, not our replica
    alone = identity_from({REPLICA_ENV: "worker"})
    assert (alone.type, alone.index, alone.tf_config, alone.primary) == ("worker", 0, None, True)

    def replica(kind: str, index: int, cluster: dict) -> object:
        return identity_from({REPLICA_ENV: kind, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {
            "type": kind, "index": index}})})

    workers = {"worker": ["a:1", "a:2"]}
    assert [replica("worker", i, workers).primary for i in (0, 1)] == [True, False]
    with_chief = {"chief": ["c:1"], "worker": ["a:1"], "ps": ["p:1"]}
    assert [replica(k, 0, with_chief).primary for k in ("chief", "worker", "ps")] == [True, False, False]
    assert replica("master", 0, {"master": ["m:1"], "worker": ["a:1"]}).primary  # the operator's other name
    assert replica("worker", 1, workers).tf_config["cluster"] == workers


def test_replica_environment_drops_the_callers_own_cluster():
    from flyteplugins.tensorflow._job import replica_environment

    env = replica_environment("/jobs/j1", {"TF_CONFIG": "{}", "FLYTE_TF_REPLICA": "worker", "TMPDIR": "/x",
                                           "PATH": "/bin", "PYTHONPATH": "/extra"})
    assert "TF_CONFIG" not in env and "FLYTE_TF_REPLICA" not in env and "TMPDIR" not in env
    assert env["PATH"] == "/bin" and env["PYTHONUNBUFFERED"] == "1" and env["FLYTE_TENSORFLOW_JOB"] == "/jobs/j1"
    assert env["PYTHONPATH"].split(":")[-1] == "/extra"


def test_failure_reports_name_the_replica_and_keep_the_user_type(tmp_path):
    import os

    from flyte.runtime import _error_document
    from flyteplugins.tensorflow._cluster import Replica
    from flyteplugins.tensorflow._errors import Ended, job_error

    killed = Ended(Replica("worker", 1), 42, -9, None)
    error = job_error("t.train", [killed])
    assert isinstance(error, TfJobError)
    assert "t.train: replica worker 1 (pid 42) was killed by SIGKILL (exit code -9); hint:" in str(error)
    assert "OOM killer" in str(error)

    def document(name: str, exc: BaseException, mtime: float) -> str:
        try:
            raise exc
        except BaseException as raised:
            path = tmp_path / name
            path.write_bytes(msgspec.json.encode(_error_document(raised)))
        os.utime(path, (mtime, mtime))
        return str(path)

    first = Ended(Replica("ps", 0), 7, 1, document("ps.json", KeyError("k"), 100))
    later = Ended(Replica("chief", 0), 8, 1, document("chief.json", RuntimeError("peer gone"), 200))
    error = job_error("t.train", [killed, later, first])
    assert isinstance(error, KeyError)  # the earliest documented failure: the others followed from it
    notes = "\n".join(error.__notes__)
    assert "replica ps 0 (pid 7) failed with exit code 1" in notes and "also worker 1 (pid 42)" in notes
    exited = Ended(Replica("worker", 0), 9, 1, document("exit.json", SystemExit(3), 300))
    error = job_error("t.train", [exited])
    assert isinstance(error, TfJobError) and "SystemExit: 3" in str(error)  # never exits the caller
