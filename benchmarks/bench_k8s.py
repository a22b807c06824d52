"""The remote controller's overhead per call, over the Kubernetes API server double.

The double (tests/k8s/kube_double: a test double of the API server, Job controller and kubelet, whose pods are local
processes) and the S3 server (moto) run in processes of their own. Two measurements, each against a baseline taken
in the same run: the same ``python -m flyte.runtime`` processes (what each pod runs) started directly, reading their
inputs from and writing their outputs to the same S3 store, so only the controller and the cluster differ.

1. Child calls (what the issue asks): a remote task, itself in a pod, calls 1, 10 or 100 children at once with
   ``asyncio.gather``; the children's Jobs are submitted from its pod. Every child returns when its body started, so
   each call splits into submit -> running (uploading inputs, creating the Job, the double scheduling it, the pod's
   process starting) and running -> outputs read (the body, the watch seeing the pod end, reading the outputs). The
   baseline splits the same way: process spawn -> body, body -> exit. Overhead per call excluding pod start =
   remote call time - baseline process time.
2. Calls from this process (a run's root calls): wall time of n calls against n direct processes, and the
   controller's CPU time per call (this process's CPU: the servers are elsewhere).
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
from pathlib import Path

import flyte

REPO = Path(__file__).resolve().parents[1]
env = flyte.TaskEnvironment(name="bench_k8s")


@env.task
async def noop(x: int) -> int:
    return x


@env.task
async def started_at(i: int) -> float:
    """When its body started (the double's pods run on this machine: one clock)."""
    return time.time()


@env.task
async def fan_out(n: int) -> list[list[float]]:
    """``n`` child calls at once, from this task's pod: [submitted, child body started, outputs read] each."""

    async def one(i: int) -> list[float]:
        submitted = time.time()
        began = await started_at(i)
        return [submitted, began, time.time()]

    return list(await asyncio.gather(*(one(i) for i in range(n))))


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


async def _concurrent(n: int) -> dict[str, float]:
    from flyte._controller import controller_for
    from flyte._k8s.controller import RemoteController
    from flyte._k8s.settings import current
    from flyte._run import RunOptions, RunState
    from flyte._runner import _remote_options

    state = RunState(_remote_options(RunOptions(mode="remote", progress="quiet")))
    state.controller = RemoteController(current())  # type: ignore[arg-type]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        await state.controller.session(state)

        async def one(i: int) -> None:
            assert await controller_for(state).submit(noop, (i,), {}, parent=None, run=state) == i

        await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - wall0
    finally:
        await state.close()
    return {"wall": wall, "cpu": (time.process_time() - cpu0) / n}


def _direct_children(folder: str, storage: str, n: int) -> list[list[float]]:
    """``n`` runtime processes of ``started_at`` started together, with inputs and outputs on the S3 store: [spawned,
    body started, exited] each (exits seen by polling every 5 ms)."""
    import cloudpickle

    from flyte import _storage, runtime

    prefix = f"{storage}/direct/{os.urandom(4).hex()}"
    _storage.write_bytes(f"{prefix}/task.pkl", cloudpickle.dumps(started_at))
    runtime.write_inputs(started_at, f"{prefix}/inputs.msgpack", 1)
    spawned, processes = [], []
    for i in range(n):
        spawned.append(time.time())
        processes.append(subprocess.Popen([sys.executable, "-m", "flyte.runtime", *runtime.arguments(
            task=f"{prefix}/task.pkl", inputs=f"{prefix}/inputs.msgpack", outputs=f"{prefix}/out{i}",
            raw_data_path=f"{prefix}/data", run_name="direct", action=f"a{i}")]))
    exited: dict[int, float] = {}
    while len(exited) < n:
        for i, process in enumerate(processes):
            if i not in exited and process.poll() is not None:
                assert process.returncode == 0
                exited[i] = time.time()
        time.sleep(0.005)
    return [[spawned[i], runtime.read_outputs(started_at, f"{prefix}/out{i}"), exited[i]] for i in range(n)]


def _wall(rows: list[list[float]]) -> float:
    return max(row[2] for row in rows) - min(row[0] for row in rows)


def _child_calls(folder: str, storage: str, n: int) -> str:
    remote = flyte.with_runcontext(mode="remote").run(fan_out, n=n).outputs()[0]
    direct = _direct_children(folder, storage, n)

    def median(rows: list[list[float]], a: int, b: int) -> float:
        return statistics.median(row[b] - row[a] for row in rows) * 1000

    # With many calls on a small machine the processes compete for its cores, so per-call latencies depend on how
    # the starts overlap; the whole fan-out's wall time is the comparable figure, per call.
    remote_wall, direct_wall = _wall(remote), _wall(direct)
    return (f"{n:>3} child calls: {remote_wall:.2f}s in all vs {direct_wall:.2f}s for the same processes alone "
            f"({remote_wall / direct_wall:.2f}x): overhead {(remote_wall - direct_wall) / n * 1000:.0f} ms/call "
            f"excluding pod start. Median call: submit->running {median(remote, 0, 1):.0f} ms, running->outputs read "
            f"{median(remote, 1, 2):.0f} ms (alone: spawn->body {median(direct, 0, 1):.0f}, body->exit "
            f"{median(direct, 1, 2):.0f})")


def main() -> None:
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with tempfile.TemporaryDirectory(prefix="bench-k8s-") as folder:
        servers, kubeconfig, storage = _start_servers(folder)
        try:
            flyte.init(kubernetes={"kubeconfig": kubeconfig, "storage": storage, "watch_timeout": 30})
            asyncio.run(_concurrent(1))  # warm: bundle upload, connections
            print("child calls from a remote task's pod, with the same processes started directly as baseline:",
                  flush=True)
            for n in (1, 10, 100):
                print(_child_calls(folder, storage, n), flush=True)
            print("root calls from this process:", flush=True)
            for n in (1, 10, 100):
                direct = statistics.median(_wall(_direct_children(folder, storage, n))
                                           for _ in range(3 if n < 100 else 1))
                remote = asyncio.run(_concurrent(n))
                print(f"{n:>3} concurrent: remote {remote['wall']:.2f}s vs {direct:.2f}s for the same processes "
                      f"started directly ({remote['wall'] / direct:.2f}x): overhead "
                      f"{(remote['wall'] - direct) / n * 1000:.0f} ms/call, controller CPU "
                      f"{remote['cpu'] * 1000:.1f} ms/call", flush=True)
        finally:
            for server in servers:
                server.stdin.close()  # type: ignore[union-attr]
                try:
                    server.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    server.kill()


if __name__ == "__main__":
    main()
