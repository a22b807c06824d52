"""Fixtures for the Dask plugin's tests: a process marker for leak checks, a user module that is not installed, and
an external scheduler with workers started by distributed's own command-line entry points."""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid

import pytest
from _dask_testkit import MARKER_ENV, dask_processes, wait_until

import flyteplugins.dask.task  # noqa: F401  registers the plugin


@pytest.fixture(scope="module", autouse=True)
def dask_marker():
    """Every process started during a Dask test module inherits this marker, so leak checks find them (orphans
    included) without touching other people's processes."""
    marker = f"dasktest-{uuid.uuid4().hex[:10]}"
    previous = os.environ.get(MARKER_ENV)
    os.environ[MARKER_ENV] = marker
    scratch_before = os.path.exists(os.path.join(tempfile.gettempdir(), "dask-scratch-space"))
    yield marker
    if previous is None:
        os.environ.pop(MARKER_ENV, None)
    else:
        os.environ[MARKER_ENV] = previous
    wait_until(lambda: not dask_processes(marker), 20)
    leaked = dask_processes(marker)
    assert not leaked, f"Dask processes left after the module: {[(p.pid, p.cmdline()) for p in leaked]}"
    if not scratch_before:
        assert not os.path.exists(os.path.join(tempfile.gettempdir(), "dask-scratch-space")), \
            "the tests left <tmp>/dask-scratch-space behind"


@pytest.fixture(scope="module")
def user_module(tmp_path_factory):
    """A module that exists only in a temporary directory that is NOT on sys.path when the run starts: workers can
    import it only through the code bundle. ``where()`` returns (module file, pid) of the process that runs it."""
    root = tmp_path_factory.mktemp("usercode")
    name = f"flyte_dask_usermod_{uuid.uuid4().hex[:8]}"
    (root / f"{name}.py").write_text(textwrap.dedent("""
        import os

        def where(_=None):
            return __file__, os.getpid()

        def triple(x):
            return 3 * x
    """))
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(name)
    finally:
        sys.path.remove(str(root))
    importlib.invalidate_caches()
    yield module
    sys.modules.pop(name, None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ExternalCluster:
    """A scheduler and workers run with ``dask scheduler`` / ``dask worker``, in their own process groups."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.address = ""
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env = dict(os.environ, DASK_TEMPORARY_DIRECTORY=os.path.join(root, "tmp"))
        # Workers must not see the user module's directory: only the code bundle may bring it.
        self.env.pop("PYTHONPATH", None)

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = open(os.path.join(self.root, log_name), "wb")
        proc = subprocess.Popen([sys.executable, "-m", *args], cwd=self.root, env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def start_scheduler(self) -> None:
        port = _free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        self._spawn(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
                     "--no-dashboard"], "scheduler.log")

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        directory = os.path.join(self.root, name)
        os.makedirs(directory, exist_ok=True)
        return self._spawn(["distributed.cli.dask_worker", self.address, "--nworkers", "1", "--nthreads", "1",
                            "--no-dashboard", "--name", name, "--local-directory", directory, "--memory-limit",
                            "1GiB"], f"{name}.log")

    def pids(self) -> tuple[int, ...]:
        """The started processes and their children (a worker's nanny runs the worker in a child process)."""
        import psutil

        out: list[int] = []
        for proc in self.procs:
            try:
                parent = psutil.Process(proc.pid)
                out += [parent.pid, *(child.pid for child in parent.children(recursive=True))]
            except psutil.NoSuchProcess:
                continue
        return tuple(out)

    def logs(self) -> str:
        out = []
        for name in sorted(os.listdir(self.root)):
            if name.endswith(".log"):
                with open(os.path.join(self.root, name), errors="replace") as handle:
                    out.append(f"--- {name}\n{handle.read()[-3000:]}")
        return "\n".join(out)

    def stop(self) -> None:
        import signal

        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 15
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


@pytest.fixture(scope="module")
def external_cluster(tmp_path_factory, dask_marker):
    """``dask scheduler`` and two ``dask worker`` processes; stopped (by their process groups) after the module."""
    from distributed import Client

    cluster = ExternalCluster(str(tmp_path_factory.mktemp("external-dask")))
    cluster.start_scheduler()
    cluster.start_worker("w1")
    cluster.start_worker("w2")
    try:
        with Client(cluster.address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
    except Exception:
        cluster.stop()
        pytest.fail(f"the external Dask cluster did not start:\n{cluster.logs()}")
    yield cluster
    cluster.stop()
