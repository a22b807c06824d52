"""The remote controller's overhead per call, over the Kubernetes API server double.

The double (tests/k8s/kube_double: a test double of the API server, Job controller and kubelet, whose pods are local
processes) and the S3 server (moto) run in processes of their own, so this process's CPU time is the controller's.
For 1, 10 and 100 concurrent calls of a trivial task (one run, its calls submitted together):

- remote wall: from the first submit to the last output read;
- baseline wall, measured in the same run: the same number of ``python -m flyte.runtime`` processes (what each pod
  runs) started together directly, with local files: the calls' cost with no controller and no cluster;
- overhead per call: (remote wall - baseline wall) / calls, i.e. what the controller and the API round trips add
  (uploading inputs, creating the Job, the double scheduling it, the watch seeing the pod start and end, reading the
  outputs, deleting the Job), pod start excluded;
- controller CPU per call: this process's CPU time / calls.
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


def _direct_runtime(folder: str, n: int) -> float:
    """``n`` ``python -m flyte.runtime`` processes started together with local files: the calls with no controller
    and no cluster; their wall time."""
    import cloudpickle
    import msgspec

    task_file = Path(folder) / "task.pkl"
    task_file.write_bytes(cloudpickle.dumps(noop))
    inputs = Path(folder) / "inputs.msgpack"
    inputs.write_bytes(msgspec.msgpack.encode(noop.interface.encode_inputs({"x": 1}, folder)))
    start = time.perf_counter()
    processes = [subprocess.Popen([sys.executable, "-m", "flyte.runtime", "--task", str(task_file), "--pickled-task",
                                   "--inputs", str(inputs), "--outputs", str(Path(folder) / f"out{i}"),
                                   "--raw-data-path", folder]) for i in range(n)]
    for process in processes:
        assert process.wait() == 0
    return time.perf_counter() - start


def main() -> None:
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with tempfile.TemporaryDirectory(prefix="bench-k8s-") as folder:
        servers, kubeconfig, storage = _start_servers(folder)
        try:
            flyte.init(kubernetes={"kubeconfig": kubeconfig, "storage": storage, "watch_timeout": 30})
            asyncio.run(_concurrent(1))  # warm: bundle upload, connections
            for n in (1, 10, 100):
                direct = statistics.median(_direct_runtime(folder, n) for _ in range(3 if n < 100 else 1))
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
