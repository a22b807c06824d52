"""Embedded tier, end to end: one run drives the whole scenario (two cold starts in all), each test checks one fact.

The seed's Dask example runs as written (3 workers of cpu=2/memory=4Gi), after calls of the same task overridden to
a single worker: the worker count seen inside the task follows ``number_of_workers``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os

import dask
import psutil
import pytest
from _dask_testkit import assert_no_leaks, port_open
from distributed import Client, get_client

import flyte
from flyteplugins.dask.task import Dask, Scheduler, WorkerGroup

pytestmark = [pytest.mark.dask, pytest.mark.slow]

# -- the seed's example, as written ------------------------------------------------------------------------------------
dask_config = Dask(
    scheduler=Scheduler(resources=flyte.Resources(cpu="1", memory="2Gi")),
    workers=WorkerGroup(number_of_workers=3, resources=flyte.Resources(cpu="2", memory="4Gi")),
)

dask_env = flyte.TaskEnvironment(
    name="dask_env",
    plugin_config=dask_config,
    image="my-dask-image",
)


@dask_env.task
async def dask_task(module_name: str) -> dict:
    # Connect to the Dask cluster
    client = Client()
    return observe(client, module_name)


# -- the rest of the scenario ------------------------------------------------------------------------------------------
ONE_WORKER = Dask(workers=WorkerGroup(number_of_workers=1, requests={"cpu": "1", "memory": "1Gi"}))
small_env = flyte.TaskEnvironment(name="dask_small", plugin_config=ONE_WORKER)
driver_env = flyte.TaskEnvironment(name="dask_driver")


def _seed_shape(workers: int) -> Dask:
    return Dask(scheduler=Scheduler(resources=flyte.Resources(cpu="1", memory="2Gi")),
                workers=WorkerGroup(number_of_workers=workers, resources=flyte.Resources(cpu="2", memory="4Gi")))


def observe(client: Client, module_name: str) -> dict:
    """What a task body sees of its cluster."""
    workers = client.scheduler_info()["workers"]
    user = importlib.import_module(module_name)
    return {
        "workers": len(workers),
        "threads": sorted(w["nthreads"] for w in workers.values()),
        "memory": sorted(w["memory_limit"] for w in workers.values()),
        "address": client.scheduler.address,
        "worker_pids": sorted(client.run(os.getpid).values()),
        "compute_pid": dask.compute(dask.delayed(os.getpid, pure=False)())[0],
        "get_client_pid": get_client().submit(os.getpid, pure=False).result(),
        "ctx_address": flyte.ctx().data["dask_client"].scheduler.address,
        "bundle_files": sorted(file for file, _ in client.run(user.where).values()),
        "tripled": client.submit(user.triple, 14).result(),
    }


@small_env.task
def sync_body(module_name: str) -> dict:
    """A sync body runs in a worker thread: the task's cluster must still be the current one there."""
    return observe(Client(), module_name)


@small_env.task
async def late_joiner(module_name: str) -> dict:
    """Grow the cluster by a worker, then run the user's code on the newcomer only."""
    cluster = flyte.ctx().data["dask_cluster"]
    client = get_client()
    before = set(client.scheduler_info()["workers"])
    cluster.scale(len(before) + 1)
    client.wait_for_workers(len(before) + 1, timeout=120)
    newcomer = sorted(set(client.scheduler_info()["workers"]) - before)[0]
    user = importlib.import_module(module_name)
    file, pid = client.submit(user.where, workers=[newcomer], allow_other_workers=False, pure=False).result()
    return {"file": file, "pid": pid, "cluster_dir": flyte.ctx().data["dask_engine"].local_directory}


@driver_env.task
async def scenario(module_name: str) -> dict:
    small = dask_task.override(plugin_config=ONE_WORKER)
    out: dict = {}
    out["first"] = await small(module_name)
    out["second"] = await small(module_name)
    out["sync"] = await sync_body(module_name)
    out["late"] = await late_joiner(module_name)
    out["seed"] = await dask_task(module_name)  # 3 workers: the 1-worker cluster must be replaced
    # Only the worker count differs from the seed's config: the live cluster is scaled, down and up again.
    out["two"] = await dask_task.override(plugin_config=_seed_shape(2))(module_name)
    out["three"] = await dask_task(module_name)
    first = out["first"]
    out["old_port_open"] = port_open(first["address"])
    out["old_workers_alive"] = [pid for pid in first["worker_pids"] if psutil.pid_exists(pid)
                                and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    return out


@pytest.fixture(scope="module")
def observed(user_module):
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        run = flyte.with_runcontext(name="dasktestembedded", progress="plain").run(scenario, user_module.__name__)
    out = run.outputs()[0]
    out["links"] = [link for root in run.actions for action in root.walk() for link in action.links.items()]
    out["progress"] = stderr.getvalue()
    out["user_source"] = user_module.__file__
    return out


def test_seed_example_sees_the_configured_worker_count(observed):
    assert observed["seed"]["workers"] == 3
    assert observed["seed"]["threads"] == [2, 2, 2]  # cpu="2"
    assert observed["seed"]["memory"] == [4 * 2**30] * 3  # memory="4Gi"


def test_override_to_one_worker_changes_the_count_and_the_cluster(observed):
    assert observed["first"]["workers"] == 1
    assert observed["first"]["threads"] == [1] and observed["first"]["memory"] == [2**30]  # v1 requests spelling
    assert observed["seed"]["address"] != observed["first"]["address"]


def test_a_worker_count_change_scales_the_live_cluster(observed):
    seed, two, three = observed["seed"], observed["two"], observed["three"]
    assert seed["address"] == two["address"] == three["address"]  # the same scheduler throughout
    assert (two["workers"], three["workers"]) == (2, 3)
    assert set(two["worker_pids"]) < set(seed["worker_pids"])  # one retired, the others kept
    assert set(two["worker_pids"]) < set(three["worker_pids"])
    assert len(three["bundle_files"]) == 3 and three["tripled"] == 42  # the newcomer has the code bundle
    assert three["threads"] == [2, 2, 2] and three["memory"] == [4 * 2**30] * 3


def test_resize_stopped_the_smaller_cluster(observed):
    assert observed["old_port_open"] is False
    assert observed["old_workers_alive"] == []


def test_second_compatible_call_reuses_the_cluster(observed):
    first, second = observed["first"], observed["second"]
    assert second["address"] == first["address"]
    assert second["worker_pids"] == first["worker_pids"]
    # How much faster a warm call is: benchmarks/, not a timed assertion here.


def test_client_get_client_and_dask_compute_use_the_task_cluster(observed):
    for call in ("first", "second", "sync", "seed"):
        seen = observed[call]
        assert seen["ctx_address"] == seen["address"], call
        assert seen["compute_pid"] in seen["worker_pids"], call
        assert seen["get_client_pid"] in seen["worker_pids"], call
        assert os.getpid() not in seen["worker_pids"], call


def test_sync_body_runs_on_the_same_cluster(observed):
    assert observed["sync"]["address"] == observed["first"]["address"]


def test_user_module_runs_from_the_code_bundle_on_every_worker(observed):
    for call in ("first", "seed"):
        files = observed[call]["bundle_files"]
        assert len(files) == observed[call]["workers"]
        for file in files:
            assert "flyte-bundles" in file and file != observed["user_source"], file
        assert observed[call]["tripled"] == 42


def test_workers_joining_later_get_the_code_bundle(observed):
    late = observed["late"]
    assert late["pid"] not in observed["first"]["worker_pids"]
    assert late["file"].startswith(late["cluster_dir"]) and "flyte-bundles" in late["file"]


def test_dashboard_link_is_in_the_progress(observed):
    labels = [label for label, _ in observed["links"]]
    assert labels.count("Dask dashboard") >= 2
    assert all(url.startswith("http://127.0.0.1:") for label, url in observed["links"] if label == "Dask dashboard")
    assert "Dask dashboard: http://127.0.0.1:" in observed["progress"]


def test_nothing_left_after_the_run(observed):
    assert_no_leaks("dasktestembedded", addresses=(observed["first"]["address"], observed["seed"]["address"]))
