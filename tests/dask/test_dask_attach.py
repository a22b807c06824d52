"""Attach tier against a real external cluster: ``dask scheduler`` and two ``dask worker`` processes started with
distributed's own command-line entry points. The run ships its code to the workers (also to one that joins during
the run), and leaves the cluster running with no trace of the SDK's plugins."""

from __future__ import annotations

import importlib
import importlib.util
import socket

import pytest
from _dask_testkit import assert_no_leaks
from distributed import Client

import flyte
from flyteplugins.dask import _attach
from flyteplugins.dask._plugins import PLUGIN_NAME, active_bundle
from flyteplugins.dask.task import Dask

pytestmark = [pytest.mark.dask, pytest.mark.slow]

EXTERNAL: dict = {}  # the fixture's cluster, for the task body that starts a late worker
env = flyte.TaskEnvironment(name="dask_attach", plugin_config=Dask(scheduler_address="tcp://127.0.0.1:1"))


@env.task
async def on_existing_cluster(module_name: str, late_worker: bool) -> dict:
    client = Client()  # no arguments: the attached scheduler
    user = importlib.import_module(module_name)
    out = {
        "address": client.scheduler.address,
        "workers": len(client.scheduler_info()["workers"]),
        "files": sorted(file for file, _ in client.run(user.where).values()),
        "scheduler_bundle": client.run_on_scheduler(active_bundle, "scheduler"),
        "tripled": client.submit(user.triple, 14, pure=False).result(),
    }
    if late_worker:
        EXTERNAL["cluster"].start_worker("late")
        client.wait_for_workers(out["workers"] + 1, timeout=120)
        late = [addr for addr, info in client.scheduler_info()["workers"].items()
                if info.get("name") == "late"]
        out["late_file"] = client.submit(user.where, workers=late, allow_other_workers=False, pure=False).result()[0]
    return out


@pytest.fixture(scope="module")
def attached(external_cluster, user_module):
    EXTERNAL["cluster"] = external_cluster
    task = on_existing_cluster.override(plugin_config=Dask(scheduler_address=external_cluster.address))
    try:
        run = flyte.with_runcontext(name="dasktestattach").run(task, user_module.__name__, True)
    finally:
        EXTERNAL.clear()
    return run.outputs()[0]


def test_client_connects_to_the_existing_scheduler(attached, external_cluster):
    assert attached["address"] == external_cluster.address
    assert attached["workers"] == 2


def test_user_code_runs_from_the_bundle_on_the_workers(attached, external_cluster, user_module):
    assert len(attached["files"]) == 2
    for file in attached["files"]:
        assert file.startswith(external_cluster.root) and "flyte-bundles" in file
    assert attached["tripled"] == 42


def test_scheduler_plugin_installs_the_bundle_on_the_scheduler(attached):
    assert attached["scheduler_bundle"] and "flyte-bundles" in attached["scheduler_bundle"]


def test_worker_joining_during_the_run_gets_the_bundle(attached, external_cluster):
    assert attached["late_file"].startswith(external_cluster.root) and "flyte-bundles" in attached["late_file"]


def test_cluster_keeps_running_without_the_plugins(attached, external_cluster, user_module):
    assert all(proc.poll() is None for proc in external_cluster.procs), "the run closed part of the external cluster"
    with Client(external_cluster.address, timeout=30) as client:
        assert len(client.scheduler_info()["workers"]) == 3
        assert not any(client.run(lambda dask_worker: PLUGIN_NAME in dask_worker.plugins).values())
        assert set(client.run(active_bundle, "worker").values()) == {None}
        assert set(client.run(importlib.util.find_spec, user_module.__name__).values()) == {None}
        assert client.run_on_scheduler(lambda dask_scheduler: PLUGIN_NAME in dask_scheduler.plugins
                                       or PLUGIN_NAME in dask_scheduler.worker_plugins) is False
        assert client.run_on_scheduler(active_bundle, "scheduler") is None
    assert_no_leaks("dasktestattach", exclude=external_cluster.pids())


def test_changed_code_reaches_the_long_lived_workers_on_the_next_run(attached, external_cluster, user_module):
    source = open(user_module.__file__).read()
    with open(user_module.__file__, "w") as handle:
        handle.write(source.replace("return 3 * x", "return 4 * x"))
    task = on_existing_cluster.override(plugin_config=Dask(scheduler_address=external_cluster.address))
    out = flyte.with_runcontext(name="dasktestattach2").run(task, user_module.__name__, False).outputs()[0]
    assert out["tripled"] == 56
    assert_no_leaks("dasktestattach2", exclude=external_cluster.pids())


def test_unreachable_scheduler_fails_with_the_address(monkeypatch):
    monkeypatch.setattr(_attach, "_CONNECT_TIMEOUT_S", 2)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    task = on_existing_cluster.override(plugin_config=Dask(scheduler_address=address))
    with pytest.raises(ConnectionError, match=address):
        flyte.with_runcontext(name="dasktestnoscheduler").run(task, "unused", False)
