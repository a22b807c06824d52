"""The embedded tier against a real local Ray: the seed example, sizing from the config, warm reuse, restart on
resize, user modules shipped to workers, runtime_env, dashboard link and worker logs reaching the user."""

from __future__ import annotations

import os
import socket
import sys
import textwrap
import time
import urllib.request
import uuid

import pytest

import flyte
from flyteplugins.ray.task import HeadNodeConfig, RayJobConfig, WorkerNodeConfig

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _user_module(tmp_path, monkeypatch):
    """A module of the user's that is not installed: importable here only through tmp_path."""
    name = f"flyte_ray_user_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent("""
        import importlib
        import os

        import ray

        @ray.remote
        def where(x):
            print("flyte-ray-log-marker", x, flush=True)
            # Where the worker imports this module from (a by-value pickle would carry the driver's __file__).
            imported_from = importlib.import_module(__name__).__file__
            return {"file": imported_from, "cwd": os.getcwd(), "pid": os.getpid(), "x": x * x,
                    "env": os.environ.get("FLYTE_RAY_TEST_VAR")}
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    return __import__(name)


def test_embedded_seed_example_resize_reuse_user_module_logs(tmp_path, monkeypatch, capfd, no_ray_leak):
    import ray

    usermod = _user_module(tmp_path, monkeypatch)
    # The seed's Ray example as written, but 1 worker replica; the override below takes it to 2.
    ray_config = RayJobConfig(
        head_node_config=HeadNodeConfig(ray_start_params={"log-color": "True"}),
        worker_node_config=[WorkerNodeConfig(group_name="ray-group", replicas=1)],
    )
    ray_env = flyte.TaskEnvironment(name="ray_env", plugin_config=ray_config, image="my-ray-image")

    @ray_env.task
    async def ray_task(n: int = 3) -> list[int]:
        @ray.remote
        def square(x):
            return x * x

        futures = [square.remote(i) for i in range(n)]
        return ray.get(futures)

    @ray_env.task
    async def probe() -> dict:
        data = flyte.ctx().data
        result = ray.get(usermod.where.remote(7))
        no_ray_leak.record()
        return {"cpus": int(ray.cluster_resources()["CPU"]), "address": data["ray_address"],
                "tier": data["ray_tier"], "temp": data["ray_temp_dir"], **result}

    plain = flyte.TaskEnvironment(name="ray_driver")
    bigger = RayJobConfig(head_node_config=HeadNodeConfig(ray_start_params={"log-color": "True"}),
                          worker_node_config=[WorkerNodeConfig(group_name="ray-group", replicas=2)])

    @plain.task
    async def main() -> dict:
        squares = await ray_task()
        small = await probe()
        warm = await probe()
        big = await probe.override(plugin_config=bigger)()
        return {"squares": squares, "small": small, "warm": warm, "big": big}

    out = flyte.run(main).outputs()[0]
    assert out["squares"] == [0, 1, 4]
    small, warm, big = out["small"], out["warm"], out["big"]
    assert small["tier"] == "embedded" and small["x"] == 49
    assert small["cpus"] == 1
    if (os.cpu_count() or 1) >= 2:
        assert big["cpus"] == 2, "the override to 2 worker replicas must show 2 CPUs inside the task"
    assert warm["address"] == small["address"] and warm["temp"] == small["temp"], "a compatible call must reuse"
    assert big["address"] != small["address"] or big["temp"] != small["temp"], "a resize must restart Ray"
    # The user's module reached the workers through the code bundle, not through this process's sys.path.
    assert not small["file"].startswith(str(tmp_path)), small["file"]
    assert os.path.basename(small["file"]) == os.path.basename(usermod.__file__)
    assert not ray.is_initialized()
    # Remote functions' output is forwarded to the driver's terminal, tagged with the Ray task.
    deadline, seen = time.monotonic() + 10, ""
    while "flyte-ray-log-marker 7" not in seen and time.monotonic() < deadline:
        captured = capfd.readouterr()
        seen += captured.out + captured.err
        time.sleep(0.2)
    assert "flyte-ray-log-marker 7" in seen and "pid=" in seen, seen[-2000:]


def test_embedded_runtime_env_and_dashboard_link(tmp_path, monkeypatch, no_ray_leak):
    import ray

    usermod = _user_module(tmp_path, monkeypatch)
    config = RayJobConfig(
        head_node_config=HeadNodeConfig(ray_start_params={"include-dashboard": "true", "dashboard-port": "0"}),
        runtime_env={"env_vars": {"FLYTE_RAY_TEST_VAR": "from-runtime-env"}},
    )
    env = flyte.TaskEnvironment(name="ray_rtenv", plugin_config=config)

    @env.task
    def probe() -> dict:  # a sync task: runs in a worker thread, Ray works there too
        result = ray.get(usermod.where.remote(3))
        no_ray_leak.record()
        url = flyte.ctx().data["ray_dashboard_url"]
        with urllib.request.urlopen(url, timeout=20) as response:
            status = response.status
        return {**result, "url": url, "status": status}

    run = flyte.run(probe)
    out = run.outputs()[0]
    assert out["env"] == "from-runtime-env"
    assert out["x"] == 9
    # working_dir is the code bundle: Ray unpacked it for the worker, which runs inside it.
    assert "runtime_resources" in out["file"] and "working_dir" in out["file"], out["file"]
    assert out["cwd"] == os.path.dirname(out["file"])
    assert out["status"] == 200
    assert run.actions[0].links["Ray dashboard"] == out["url"]


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _pypi_reachable(), reason="the seed's runtime_env pip-installs numpy and pandas from PyPI")
def test_seed_example_as_written_with_pip_runtime_env(no_ray_leak):
    """The seed's example verbatim: Ray builds a virtualenv with numpy and pandas for the workers."""
    import ray

    ray_config = RayJobConfig(
        head_node_config=HeadNodeConfig(ray_start_params={"log-color": "True"}),
        worker_node_config=[WorkerNodeConfig(group_name="ray-group", replicas=2)],
        runtime_env={"pip": ["numpy", "pandas"]},
    )
    ray_env = flyte.TaskEnvironment(name="ray_env", plugin_config=ray_config, image="my-ray-image")

    @ray_env.task
    async def ray_task(n: int = 3) -> list[int]:
        @ray.remote
        def square(x):
            return x * x

        futures = [square.remote(i) for i in range(n)]
        return ray.get(futures)

    assert flyte.run(ray_task).outputs()[0] == [0, 1, 4]
    assert sys.modules.get("ray") is ray
