"""The attach tier against a real two-node Ray cluster on localhost, started here with `ray start`: the code bundle
is shipped as the working_dir, the job sees both nodes, and the cluster outlives the run."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid

import pytest

import flyte
from flyteplugins.ray.task import RayJobConfig

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def two_node_cluster():
    """`ray start --head` plus a second node joining it, each blocking in its own process group."""
    import psutil

    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    temp_dir = tempfile.mkdtemp(prefix="frc-", dir="/tmp")
    workdir = tempfile.mkdtemp(prefix="frc-cwd-", dir="/tmp")  # nothing importable where the nodes run
    port, client_port = _free_port(), _free_port()
    # Ray 2.5x+ turns token authentication on for `ray start`; connecting drivers must opt in to send the token.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    log = open(os.path.join(workdir, "ray-start.log"), "w")
    common = ["--block", "--num-cpus=1", f"--temp-dir={temp_dir}", "--disable-usage-stats"]
    from ray.util import get_node_ip_address

    node_ip = get_node_ip_address()  # what a driver on this machine looks for its local raylet under
    procs = [subprocess.Popen([ray_bin, "start", "--head", f"--port={port}",
                               f"--ray-client-server-port={client_port}", "--include-dashboard=false", *common],
                              cwd=workdir, env=env, start_new_session=True,
                              stdout=log, stderr=subprocess.STDOUT)]
    address = f"{node_ip}:{port}"
    try:
        _wait_for_nodes(address, 1, env, procs)
        procs.append(subprocess.Popen([ray_bin, "start", f"--address={address}", *common], cwd=workdir, env=env, start_new_session=True,
                                      stdout=log, stderr=subprocess.STDOUT))
        _wait_for_nodes(address, 2, env, procs)
        yield {"address": address, "client": f"ray://{node_ip}:{client_port}", "procs": procs, "cwd": workdir}
    finally:
        tree = []
        for proc in procs:
            try:
                tree += [proc, *psutil.Process(proc.pid).children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        for proc in reversed(procs):  # `ray start --block` stops its node's processes on SIGTERM
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        _, alive = psutil.wait_procs([p for p in tree if isinstance(p, psutil.Process)], timeout=30)
        for proc in alive:
            proc.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
        zombies_ok = [p for p in alive if _running(p)]
        assert not zombies_ok, f"cluster processes survived the teardown: {zombies_ok}"


def _running(proc) -> bool:
    import psutil

    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_for_nodes(address: str, count: int, env: dict, procs: list) -> None:
    probe = (f"import ray; ray.init(address={address!r}, logging_level='error', log_to_driver=False); "
             "print(sum(1 for n in ray.nodes() if n['Alive']))")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(proc.poll() is not None for proc in procs):
            raise RuntimeError("`ray start` exited; see its log under the cluster's working directory")
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
        if out.stdout.strip().isdigit() and int(out.stdout.strip()) >= count:
            return
        time.sleep(1)
    raise RuntimeError(f"the Ray cluster at {address} did not reach {count} nodes: {out.stderr[-1500:]}")


def _user_package(tmp_path, monkeypatch):
    """A package of the user's, importable here only through tmp_path (not installed anywhere)."""
    name = f"flyte_ray_attach_{uuid.uuid4().hex[:8]}"
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "work.py").write_text(textwrap.dedent("""
        import importlib
        import os

        import ray

        @ray.remote
        def where(x):
            return {"node": ray.get_runtime_context().get_node_id(), "x": x * x,
                    "file": importlib.import_module(__name__).__file__, "cwd": os.getcwd()}
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    return __import__(f"{name}.work", fromlist=["where"])


def _job(work, address: str):
    import ray

    env = flyte.TaskEnvironment(name="ray_attach", plugin_config=RayJobConfig(address=address))

    @env.task
    async def spread(n: int) -> dict:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        data = flyte.ctx().data
        nodes = [node["NodeID"] for node in ray.nodes() if node["Alive"]]
        # Pinned round-robin to every node (SPREAD is only a hint): the bundle must reach each of them.
        results = ray.get([work.where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            nodes[i % len(nodes)], soft=False)).remote(i) for i in range(n)])
        alive = len(nodes)
        return {"tier": data["ray_tier"], "results": results, "alive": alive}

    return spread


def test_attach_ships_the_bundle_and_leaves_the_cluster_up(two_node_cluster, tmp_path, monkeypatch):
    import psutil
    import ray

    work = _user_package(tmp_path, monkeypatch)
    spread = _job(work, two_node_cluster["address"])
    out = flyte.run(spread, 8).outputs()[0]
    assert out["tier"] == "attach" and out["alive"] == 2
    assert sorted(r["x"] for r in out["results"]) == [i * i for i in range(8)]
    assert len({r["node"] for r in out["results"]}) == 2, "tasks pinned to each node ran on both nodes"
    for result in out["results"]:
        assert not result["file"].startswith(str(tmp_path)) and "working_dir" in result["file"], result
        assert result["cwd"] in result["file"]
    assert not ray.is_initialized(), "the driver must disconnect when the run ends"
    assert all(proc.poll() is None for proc in two_node_cluster["procs"]), "the cluster must not be shut down"
    assert not [p for p in psutil.Process().children(recursive=True)
                if "raylet" in p.name() and p.status() != psutil.STATUS_ZOMBIE
                and p.ppid() == os.getpid()], "attaching must not start a local instance"

    # The cluster is still there for the next run, through "auto" (RAY_ADDRESS) and through Ray Client.
    monkeypatch.setenv("RAY_ADDRESS", two_node_cluster["address"])
    assert flyte.run(_job(work, "auto"), 2).outputs()[0]["alive"] == 2
    monkeypatch.delenv("RAY_ADDRESS")
    assert not ray.is_initialized()


CLIENT_DRIVER = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[2])
    import ray
    import flyte
    from flyteplugins.ray.task import RayJobConfig
    work = __import__(sys.argv[3] + ".work", fromlist=["where"])
    sys.path.remove(sys.argv[2])
    env = flyte.TaskEnvironment(name="ray_client", plugin_config=RayJobConfig(address=sys.argv[1]))

    @env.task
    async def spread(n: int) -> list:
        return ray.get([work.where.remote(i) for i in range(n)])

    print("RESULT", json.dumps(flyte.run(spread, 2).outputs()[0]))
""")


def test_attach_through_ray_client(two_node_cluster, tmp_path, monkeypatch):
    # Ray Client keeps process-wide state after it disconnects, so this driver runs in a process of its own.
    work = _user_package(tmp_path, monkeypatch)
    package = work.__name__.split(".")[0]
    script = tmp_path / "client_driver.py"
    script.write_text(CLIENT_DRIVER)
    env = {**os.environ, "FLYTE_PROGRESS": "quiet"}
    out = subprocess.run([sys.executable, str(script), two_node_cluster["client"], str(tmp_path), package],
                         capture_output=True, text=True, env=env, timeout=240, cwd=two_node_cluster["cwd"])
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, out.stdout[-2000:] + out.stderr[-3000:]
    import json

    results = json.loads(lines[0][len("RESULT "):])
    assert sorted(r["x"] for r in results) == [0, 1]
    assert all("working_dir" in r["file"] for r in results), results
    assert all(proc.poll() is None for proc in two_node_cluster["procs"])
