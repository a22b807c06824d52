"""The remote controller's overhead per call, over the Kubernetes API server double.

The double (tests/k8s/kube_double: a test double of the API server, Job controller and kubelet, whose pods are local
processes) and the S3 server (moto) run in processes of their own, so this process's CPU time is the controller's.
For 1, 10 and 100 concurrent calls of a trivial task (one run, its calls submitted together):

- wall: from the first submit to the last output read;
- pod: each call's container lifetime as the kubelet reports it (startedAt -> finishedAt: the process, from
  interpreter start to exit), i.e. what the cluster spends, not the controller;
- overhead per call: the call's wall time minus its container lifetime (uploading inputs, creating the Job, the
  watch seeing the pod start and end, reading the outputs): the controller's share, pod start excluded;
- controller CPU per call: this process's CPU time / calls.

The baseline in the same run: the same ``python -m flyte.runtime`` process started directly (no cluster, local
files): its wall time is what a call costs with no controller at all.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import flyte

REPO = Path(__file__).resolve().parents[1]
env = flyte.TaskEnvironment(name="bench_k8s")


@env.task
async def noop(x: int) -> int:
    return x


def _start_servers(folder: str) -> tuple[list[subprocess.Popen[bytes]], str, str]:
    moto = subprocess.Popen([sys.executable, "-c", "import sys; from moto.server import ThreadedMotoServer as S; "
                             "s = S(ip_address='127.0.0.1', port=0, verbose=False); s.start(); "
                             "print(s.get_host_and_port()[1], flush=True); sys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    port = int(moto.stdout.readline())  # type: ignore[union-attr]
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "bench",
                       "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/bench", method="PUT")).read()
    double = subprocess.Popen([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                               "from kube_double import KubeDouble; d = KubeDouble(node_cpu='64', node_memory='256Gi')"
                               ".start(); print(d.kubeconfig, flush=True); sys.stdin.read(); d.stop()",
                               str(REPO / "tests" / "k8s")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    kubeconfig = double.stdout.readline().decode().strip()  # type: ignore[union-attr]
    return [double, moto], kubeconfig, "s3://bench/flyte"


def _lifetime(pod: dict) -> float:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        ended = (status.get("state") or {}).get("terminated") or {}
        if ended.get("startedAt") and ended.get("finishedAt"):
            start = datetime.fromisoformat(ended["startedAt"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(ended["finishedAt"].replace("Z", "+00:00"))
            return (end - start).total_seconds()
    return 0.0


async def _concurrent(n: int) -> dict[str, float]:
    from flyte._controller import controller_for
    from flyte._k8s.controller import RemoteController
    from flyte._k8s.settings import current
    from flyte._run import RunOptions, RunState
    from flyte._runner import _remote_options

    state = RunState(_remote_options(RunOptions(mode="remote", progress="quiet")))
    state.controller = RemoteController(current())  # type: ignore[arg-type]
    pods: dict[str, float] = {}
    walls: dict[str, float] = {}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        session = await state.controller.session(state)
        pod_cache = session.informer(f"/api/v1/namespaces/{session.namespace}/pods")

        async def one(i: int) -> None:
            start = time.perf_counter()
            assert await controller_for(state).submit(noop, (i,), {}, parent=None, run=state) == i
            walls[str(i)] = time.perf_counter() - start

        def record() -> None:
            for pod in pod_cache.objects.values():
                lifetime = _lifetime(pod)
                if lifetime:
                    pods[pod["metadata"]["labels"]["flyte.org/action"]] = lifetime

        original = session._notify

        def notify() -> None:
            record()
            original()

        session._notify = notify  # type: ignore[method-assign]
        await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - wall0
    finally:
        await state.close()
    cpu = time.process_time() - cpu0
    mean_wall = statistics.mean(walls.values())
    mean_pod = statistics.mean(pods.values()) if pods else 0.0
    return {"wall": wall, "call": mean_wall, "pod": mean_pod, "overhead": mean_wall - mean_pod, "cpu": cpu / n,
            "seen": len(pods)}


def _direct_runtime(folder: str) -> float:
    """One ``python -m flyte.runtime`` process with local files: a call with no controller and no cluster."""
    import cloudpickle
    import msgspec

    task_file = Path(folder) / "task.pkl"
    task_file.write_bytes(cloudpickle.dumps(noop))
    inputs = Path(folder) / "inputs.msgpack"
    inputs.write_bytes(msgspec.msgpack.encode(noop.interface.encode_inputs({"x": 1}, folder)))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "flyte.runtime", "--task", str(task_file), "--pickled-task", "--inputs",
                    str(inputs), "--outputs", str(Path(folder) / "out"), "--raw-data-path", folder], check=True)
    return time.perf_counter() - start


def main() -> None:
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with tempfile.TemporaryDirectory(prefix="bench-k8s-") as folder:
        servers, kubeconfig, storage = _start_servers(folder)
        try:
            flyte.init(kubernetes={"kubeconfig": kubeconfig, "storage": storage, "watch_timeout": 30})
            direct = statistics.median(_direct_runtime(folder) for _ in range(3))
            print(f"direct `python -m flyte.runtime` (no controller): {direct * 1000:.0f} ms")
            asyncio.run(_concurrent(1))  # warm: bundle upload, connections
            for n in (1, 10, 100):
                r = asyncio.run(_concurrent(n))
                print(f"{n:>3} concurrent: wall {r['wall']:.2f}s, per call {r['call'] * 1000:.0f} ms of which pod "
                      f"{r['pod'] * 1000:.0f} ms -> controller overhead {r['overhead'] * 1000:.0f} ms/call "
                      f"({r['call'] / direct:.2f}x the direct process), controller CPU {r['cpu'] * 1000:.1f} ms/call "
                      f"[{int(r['seen'])} pod lifetimes seen]", flush=True)
        finally:
            for server in servers:
                server.stdin.close()  # type: ignore[union-attr]
                try:
                    server.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    server.kill()


if __name__ == "__main__":
    main()
