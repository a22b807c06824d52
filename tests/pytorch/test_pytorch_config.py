"""Configs, planning and error reports: no torch process is started here."""

from __future__ import annotations

import subprocess
import sys

import pytest

import flyte
from flyteplugins.pytorch.task import (
    CleanPodPolicy,
    Elastic,
    Master,
    PyTorch,
    RestartPolicy,
    RunPolicy,
    TorchFunctionTask,
    TorchJobError,
    Worker,
)


def test_importing_configs_loads_no_engine():
    code = (
        "import sys, flyte\n"
        "from flyteplugins.pytorch.task import Elastic, PyTorch, RunPolicy, CleanPodPolicy, RestartPolicy, Master, Worker\n"
        "env = flyte.TaskEnvironment(name='e', plugin_config=Elastic(nproc_per_node=2))\n"
        "heavy = [m for m in ('torch', 'pyspark', 'ray', 'distributed', 'kubernetes_asyncio') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nproc_per_node": 0}, "Elastic.nproc_per_node: must be >= 1"),
        ({"nnodes": "2:1"}, "Elastic.nnodes: '2:1' has min > max"),
        ({"nnodes": "x"}, "Elastic.nnodes: 'x' is not a node count"),
        ({"nnodes": 0}, "Elastic.nnodes: the node count must be >= 1"),
        ({"rdzv_backend": "zookeeper"}, "Elastic.rdzv_backend: 'zookeeper' is not a rendezvous backend; allowed: c10d"),
        ({"nccl_collective_timeout_sec": -1}, "Elastic.nccl_collective_timeout_sec: must be > 0"),
        ({"nccl_heartbeat_timeout_sec": -5}, "Elastic.nccl_heartbeat_timeout_sec: must be >= 1"),
        ({"nccl_async_error_handling": 7}, "Elastic.nccl_async_error_handling: 7; allowed"),
        ({"rdzv_configs": {"timeout": -1}}, "Elastic.rdzv_configs['timeout']: expected seconds > 0"),
        ({"monitor_interval": 0}, "Elastic.monitor_interval: must be > 0"),
        ({"max_restarts": -1}, "Elastic.max_restarts: expected an int >= 0"),
        ({"start_method": "thread"}, "Elastic.start_method: 'thread'; allowed: spawn, fork, forkserver"),
        ({"zombie_watchdog_interval_sec": -1}, "Elastic.zombie_watchdog_interval_sec: must be > 0"),
        ({"rdzv_endpoint": "not an endpoint"}, "Elastic.rdzv_endpoint: 'not an endpoint' is not 'host:port'"),
    ],
)
def test_elastic_rejects_bad_values_naming_the_field(kwargs, message):
    with pytest.raises((ValueError, TypeError)) as info:
        Elastic(**kwargs)
    assert message in str(info.value)


def test_kubeflow_configs_validate_and_run_as_one_node():
    config = PyTorch(master=Master(restart_policy=RestartPolicy.NEVER),
                     worker=Worker(replicas=2, requests=flyte.Resources(cpu="1"), restart_policy=RestartPolicy.FAILURE),
                     run_policy=RunPolicy(clean_pod_policy=CleanPodPolicy.ALL, backoff_limit=2),
                     nccl_collective_timeout_sec=30)
    elastic = config.as_elastic()
    assert (elastic.node_range, elastic.nproc_per_node) == ((1, 1), 3)
    assert elastic.nccl_collective_timeout_sec == 30 and elastic.run_policy == config.run_policy
    assert Elastic(nnodes="1:2").node_range == (1, 2)
    with pytest.raises(ValueError, match="Worker.replicas: must be >= 0"):
        Worker(replicas=-1)
    with pytest.raises(TypeError, match="Worker.requests: expected flyte.Resources, a dict"):
        Worker(requests=["cpu"])
    assert Worker(requests={"cpu": "1"}).requests == flyte.Resources(cpu="1")  # the seeds' v1 spelling
    with pytest.raises(TypeError, match="RunPolicy.clean_pod_policy: expected a CleanPodPolicy"):
        RunPolicy(clean_pod_policy="All")
    with pytest.raises(ValueError, match="RunPolicy.active_deadline_seconds: must be >= 1"):
        RunPolicy(active_deadline_seconds=0)


def test_both_configs_select_the_torch_template_and_serialize():
    for config in (Elastic(nproc_per_node=2), PyTorch(worker=Worker(replicas=1))):
        env = flyte.TaskEnvironment(name="cfg", plugin_config=config)

        @env.task
        def train(x: int) -> int:
            return x

        assert isinstance(train, TorchFunctionTask)
        assert train.custom_config() == __import__("msgspec").to_builtins(config)
    with pytest.raises(ValueError, match="does not support reuse"):
        flyte.TaskEnvironment(name="r", plugin_config=Elastic(), reusable=flyte.ReusePolicy(replicas=1))


def test_nccl_settings_become_worker_variables_only_when_set():
    from flyteplugins.pytorch._nccl import nccl_environment

    assert nccl_environment(Elastic()) == {}  # the installed torch's defaults apply
    env = nccl_environment(Elastic(nccl_heartbeat_timeout_sec=60, nccl_async_error_handling=True,
                                   nccl_enable_monitoring=False, nccl_collective_timeout_sec=12.5))
    assert env == {"TORCH_NCCL_HEARTBEAT_TIMEOUT_SEC": "60", "TORCH_NCCL_ASYNC_ERROR_HANDLING": "3",
                   "TORCH_NCCL_ENABLE_MONITORING": "0", "FLYTE_NCCL_COLLECTIVE_TIMEOUT_SEC": "12.5"}
    assert nccl_environment(Elastic(nccl_async_error_handling=2))["TORCH_NCCL_ASYNC_ERROR_HANDLING"] == "2"


def test_launch_plan_endpoints_and_environment():
    from flyteplugins.pytorch._plan import launch_plan, launcher_environment

    single = launch_plan(Elastic(nproc_per_node=2), "e.t", {})
    assert (single.rdzv_endpoint, single.min_nodes, single.max_nodes) == ("localhost:0", 1, 1)
    with pytest.raises(ValueError, match="Elastic.rdzv_endpoint: nnodes=2 needs a rendezvous endpoint"):
        launch_plan(Elastic(nnodes=2), "e.t", {})
    pet = launch_plan(Elastic(nnodes="1:2"), "e.t", {"PET_RDZV_ENDPOINT": "master:29400", "PET_RDZV_ID": "job7"})
    assert (pet.rdzv_endpoint, pet.run_id, pet.min_nodes, pet.max_nodes) == ("master:29400", "job7", 1, 2)
    static = launch_plan(Elastic(rdzv_backend="static"), "e.t", {})
    assert static.rdzv_endpoint.startswith("127.0.0.1:") and static.rdzv_configs["rank"] == 0

    env = launcher_environment(Elastic(nproc_per_node=2), "/j", {"RANK": "3", "PATH": "/bin"})
    assert env["OMP_NUM_THREADS"] == "1" and env["PYTHONUNBUFFERED"] == "1" and "RANK" not in env
    assert launcher_environment(Elastic(nproc_per_node=2), "/j", {"OMP_NUM_THREADS": "4"})["OMP_NUM_THREADS"] == "4"
    assert "OMP_NUM_THREADS" not in launcher_environment(Elastic(nproc_per_node=1), "/j", {})


def test_failure_reports_name_rank_signal_hint_and_keep_the_user_type():
    import cloudpickle

    from flyteplugins.pytorch._errors import error_from_failures

    killed = {"rank": 1, "local_rank": 1, "pid": 42, "exitcode": -9, "signal": "SIGKILL", "timestamp": 2,
              "message": "", "document": None}
    error = error_from_failures("e.t", [killed])
    assert isinstance(error, TorchJobError)
    assert "rank 1 (local rank 1, pid 42) was killed by SIGKILL (exit code -9)" in str(error)
    assert "OOM killer" in str(error)
    aborted = dict(killed, signal="SIGABRT", exitcode=-6)
    assert "NCCL collective timeout" in str(error_from_failures("e.t", [aborted]))

    raised = {"rank": 0, "local_rank": 0, "pid": 7, "exitcode": 1, "signal": None, "timestamp": 3, "message": "",
              "document": {"node_rank": 0, "type_name": "builtins.KeyError", "message": "'k'",
                           "traceback": "Traceback ...\nKeyError: 'k'", "exception": cloudpickle.dumps(KeyError("k"))}}
    error = error_from_failures("e.t", [killed, raised])
    assert isinstance(error, KeyError)
    notes = "\n".join(error.__notes__)
    assert "rank 0 (local rank 0, node 0, pid 7) failed with exit code 1" in notes and "Traceback ..." in notes
    assert "also rank 1" in notes
