"""``KubeDouble``: the Kubernetes API server test double, assembled and run.

Starts the store, the REST/watch server (aiohttp, on 127.0.0.1 and a free port), the garbage collector, the Job
controller, the service-account controller, the fake operators of the loaded CRDs (:mod:`kube_double.operators`,
unless ``operators=False``) and the fake kubelet of the one node "double-node", all on one event
loop in a background thread, and writes a kubeconfig (cluster/context/user "double", a bearer token, namespace
"default") for kubectl and Kubernetes client libraries. Namespaces "default" and "kube-system" exist from the start,
each with its "default" ServiceAccount. See the package docstring for what is implemented and what is simplified.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
import threading
import weakref

from aiohttp import web

from .api import Api
from .crds import load_crds
from .events import EventRecorder
from .faults import Faults
from .gc import Collector
from .jobs import JobController
from .kubelet import Kubelet, node_object
from .resources import Registry, builtin_types
from .server import build_app
from .store import Store

_LIVE: weakref.WeakSet[KubeDouble] = weakref.WeakSet()


@atexit.register
def _stop_all():
    for double in list(_LIVE):
        try:
            double.stop()
        except Exception:
            pass


class KubeDouble:
    def __init__(
        self,
        crd_dir: str | None = None,
        node_cpu: str = "4",
        node_memory: str = "8Gi",
        node_gpus: int = 0,
        bookmark_interval_s: float = 5.0,
        image_pull_grace_s: float = 0.5,
        operators: bool = True,
    ):
        self.crd_dir = crd_dir
        self.node_cpu = str(node_cpu)
        self.node_memory = str(node_memory)
        self.node_gpus = int(node_gpus)
        self.bookmark_interval_s = bookmark_interval_s
        self.image_pull_grace_s = image_pull_grace_s
        self.operators_enabled = operators
        self.operators: dict = {}  # kind -> fake operator (kube_double.operators), started with the double
        self.faults = Faults(self)
        self.requests: list[tuple[str, str]] = []
        self.queries: list[tuple[str, str]] = []  # the same, with the query string
        self.watches: list[dict] = []  # one record per watch stream served (see kube_double.watch)
        self.url: str | None = None
        self.kubeconfig: str | None = None
        self.token = "kube-double-token"
        self._tmp: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task] = []
        self._started = False
        self._stopped = False
        self._registry = Registry(builtin_types() + (load_crds(crd_dir) if crd_dir else []))
        self._store = Store()

    # ----- lifecycle
    def start(self) -> KubeDouble:
        if self._started:
            return self
        self._started = True
        self._tmp = tempfile.mkdtemp(prefix="kube-double-")
        self.kubeconfig = os.path.join(self._tmp, "kubeconfig")
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self._loop)
            self._loop.call_soon(ready.set)
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="kube-double", daemon=True)
        self._thread.start()
        ready.wait()
        try:
            asyncio.run_coroutine_threadsafe(self._astart(), self._loop).result(timeout=30)
        except BaseException:
            self.stop()
            raise
        _LIVE.add(self)
        return self

    async def _astart(self):
        store = self._store
        self._collector = Collector(store, self._registry)
        self._api = Api(store, self._registry, self._collector)
        self._recorder = EventRecorder(store)
        store.listeners.append(self._service_accounts)
        for namespace in ("default", "kube-system"):
            store.create(
                "/namespaces",
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": namespace, "labels": {"kubernetes.io/metadata.name": namespace}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                },
            )
        store.create("/nodes", node_object(self.node_cpu, self.node_memory, self.node_gpus))
        self._runner = web.AppRunner(build_app(self), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._write_kubeconfig()
        self._kubelet = Kubelet(self, store, self._collector, self._recorder, os.path.join(self._tmp, "pods"))
        self._jobs = JobController(self, store, self._collector, self._recorder, self._registry)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._collector.run()), loop.create_task(self._jobs.run())]
        if self.operators_enabled:
            from .operators import ALL

            for cls in ALL:
                if cls.available(self._registry):
                    operator = cls(self)
                    self.operators[operator.kind] = operator
                    self._tasks.append(loop.create_task(operator.run()))

    def _service_accounts(self, key, type_, obj, prev):
        if key == "/namespaces" and type_ == "ADDED":
            name = obj["metadata"]["name"]
            asyncio.get_event_loop().call_soon(self._create_default_sa, name)

    def _create_default_sa(self, namespace):
        if self._store.get("/namespaces", "", namespace) and not self._store.get(
            "/serviceaccounts", namespace, "default"
        ):
            self._store.create(
                "/serviceaccounts",
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": namespace}},
            )

    def _write_kubeconfig(self):
        text = f"""apiVersion: v1
kind: Config
clusters:
- name: double
  cluster:
    server: {self.url}
contexts:
- name: double
  context:
    cluster: double
    user: double
    namespace: default
current-context: double
users:
- name: double
  user:
    token: {self.token}
preferences: {{}}
"""
        with open(self.kubeconfig, "w", encoding="utf-8") as handle:
            handle.write(text)

    def stop(self) -> None:
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        loop = self._loop
        if loop is not None and loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._astop(), loop).result(timeout=30)
            except Exception:
                pass
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        if loop is not None and not loop.is_running():
            loop.close()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
        _LIVE.discard(self)

    async def _astop(self):
        kubelet = getattr(self, "_kubelet", None)
        if kubelet is not None:
            await kubelet.shutdown()
        for operator in self.operators.values():
            operator.shutdown()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self._runner is not None:
            await self._runner.cleanup()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)

    def __enter__(self) -> KubeDouble:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----- test helpers
    def objects(self, resource: str, namespace: str | None = None) -> list[dict]:
        rt = self._registry.resolve(resource)
        items = self._store.snapshot(rt.key, namespace)
        for item in items:
            item["apiVersion"] = rt.api_version()
            item["kind"] = rt.kind
        return items

    def live_processes(self) -> list[int]:
        kubelet = getattr(self, "_kubelet", None)
        return kubelet.live_processes() if kubelet is not None else []

    @property
    def resource_version(self) -> str:
        return str(self._store.rv)
