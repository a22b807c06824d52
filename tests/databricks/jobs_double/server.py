"""The double's HTTP side: an aiohttp server on loopback, in a thread of its own, serving the four Jobs API 2.1
endpoints with the workspace's authentication, errors, idempotency and faults. See the package docstring."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .files import FILES_API, VolumeFiles
from .runs import Executor, Fate, Run, group_members
from .shapes import check_response, check_submit, without_empty

API = "/api/2.1/jobs"
BODY = web.RequestKey("body", object)
DEFAULT_CLUSTER = "0101-000000-dblflyte"


@dataclass
class Fault:
    """Answer the next ``times`` requests to ``endpoint`` with ``status`` (and ``Retry-After``); ``after_apply``: do
    the request's work first, then fail (an answer lost on the way back)."""

    endpoint: str
    status: int
    times: int
    retry_after: float | None = None
    after_apply: bool = False


class JobsDouble:
    """A Databricks workspace's Jobs API on ``http://127.0.0.1:<port>`` (``url``), for one access ``token``."""

    def __init__(self, token: str, *, queue_s: float = 0.1, setup_s: float = 0.3, cleanup_s: float = 0.1,
                 validate: bool = True) -> None:
        self.token = token
        self.queue_s, self.setup_s, self.cleanup_s = queue_s, setup_s, cleanup_s
        self.validate = validate
        self.url = ""
        self.clusters: dict[str, dict[str, Any]] = {
            DEFAULT_CLUSTER: {"cluster_id": DEFAULT_CLUSTER, "spark_version": "15.4.x-scala2.12", "num_workers": 1}}
        self.runs: dict[int, Run] = {}
        self.requests: list[tuple[str, str, Any]] = []  # (method, endpoint, body or query): never headers
        self.violations: list[str] = []  # responses the double sent that the SDK's classes would not read back
        self.root = tempfile.mkdtemp(prefix="jobs-double-")  # dbfs:/, /Workspace/ and /Volumes/ of the workspace
        self._faults: list[Fault] = []
        self._fates: list[Fate] = []
        self._tokens: dict[str, int] = {}
        self._ids = itertools.count(1001)
        self._jobs = itertools.count(501)
        self._executions: dict[int, asyncio.Task[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._lock = threading.Lock()
        self.files = VolumeFiles(self)

    # -- control (from the tests' thread) ----------------------------------------------------------------------
    def start(self) -> JobsDouble:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._start_server())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="jobs-double", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("the Jobs API double did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(30)
        self._loop.close()
        self._loop = None
        shutil.rmtree(self.root, ignore_errors=True)

    def fail(self, endpoint: str, status: int, times: int = 1, retry_after: float | None = None,
             after_apply: bool = False) -> None:
        """Make the next ``times`` requests to ``endpoint`` (e.g. "runs/submit") fail with ``status``."""
        with self._lock:
            self._faults.append(Fault(endpoint, status, times, retry_after, after_apply))

    def doom_next_run(self, life_cycle: str, message: str) -> None:
        """The next run submitted ends in ``life_cycle`` (INTERNAL_ERROR or SKIPPED) instead of running."""
        assert life_cycle in ("INTERNAL_ERROR", "SKIPPED")
        with self._lock:
            self._fates.append(Fate(life_cycle, message))

    def cancel(self, run_id: int) -> None:
        """Cancel a run as someone else would (its page in the workspace, another client)."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.runs[run_id].cancel_requested.set)

    def calls(self, endpoint: str) -> list[Any]:
        with self._lock:
            return [body for _, name, body in self.requests if name == endpoint]

    def run(self, run_id: int) -> Run:
        return self.runs[run_id]

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until every run has ended (True) or ``timeout`` passed (False)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(run.terminal for run in list(self.runs.values())):
                return True
            time.sleep(0.1)
        return False

    def live_processes(self) -> list[int]:
        """Driver processes (process groups) still running."""
        return [run.pid for run in list(self.runs.values()) if run.pid is not None and group_members(run.pid)]

    # -- server ------------------------------------------------------------------------------------------------
    async def _start_server(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post(f"{API}/runs/submit", self._submit)
        app.router.add_get(f"{API}/runs/get", self._get)
        app.router.add_get(f"{API}/runs/get-output", self._get_output)
        app.router.add_post(f"{API}/runs/cancel", self._cancel)
        self.files.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def _shutdown(self) -> None:
        for run in self.runs.values():
            run.cancel_requested.set()
        if self._executions:
            await asyncio.gather(*self._executions.values(), return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith(FILES_API):
            endpoint = "fs/" + request.path.removeprefix(FILES_API + "/").split("/", 1)[0]
        else:
            endpoint = request.path.removeprefix(f"{API}/")
        body: Any = None
        if endpoint.startswith("fs/"):
            body = {"path": "/" + request.path.removeprefix(FILES_API + "/").partition("/")[2]}
        elif request.method == "POST":
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                return self.error(endpoint, 400, "MALFORMED_REQUEST", "Could not parse the request body as JSON")
        with self._lock:
            self.requests.append((request.method, endpoint, body if body is not None else dict(request.query)))
        header = request.headers.get("Authorization", "")
        if not header:
            return self.error(endpoint, 401, "UNAUTHENTICATED", "Credential was not sent or was of an "
                                                                  "unsupported type for this API.")
        if header != f"Bearer {self.token}":
            return self.error(endpoint, 403, "PERMISSION_DENIED", "Invalid access token.")
        fault = self._take_fault(endpoint)
        if fault is not None and not fault.after_apply:
            return self._fault_response(endpoint, fault)
        request[BODY] = body
        response = await handler(request)
        if fault is not None:
            return self._fault_response(endpoint, fault)
        return response

    def _take_fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.endpoint == endpoint and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def _fault_response(self, endpoint: str, fault: Fault) -> web.Response:
        codes = {429: ("REQUEST_LIMIT_EXCEEDED", "Too many requests. Please wait a moment and try again."),
                 500: ("INTERNAL_ERROR", "Internal error"), 502: ("BAD_GATEWAY", "Bad gateway"),
                 503: ("TEMPORARILY_UNAVAILABLE", "The service at /api/2.1/jobs is temporarily unavailable."),
                 504: ("DEADLINE_EXCEEDED", "Gateway timeout")}
        code, message = codes.get(fault.status, ("INTERNAL_ERROR", f"HTTP {fault.status}"))
        response = self.error(endpoint, fault.status, code, message)
        if fault.retry_after is not None:
            response.headers["Retry-After"] = str(int(fault.retry_after) if fault.retry_after >= 1 else 0)
        return response

    def answer(self, endpoint: str, body: dict[str, Any], status: int = 200) -> web.Response:
        body = without_empty(body)  # the service leaves out empty fields (a task's "parameters": [])
        if self.validate:
            problem = check_response(endpoint if status == 200 else "error", body)
            if problem:
                self.violations.append(f"{endpoint}: {problem}")
                return web.json_response({"error_code": "INTERNAL_ERROR", "message": f"double: {problem}"},
                                         status=500)
        return web.json_response(body, status=status)

    def error(self, endpoint: str, status: int, code: str, message: str) -> web.Response:
        return self.answer(endpoint, {"error_code": code, "message": message}, status)

    # -- endpoints ---------------------------------------------------------------------------------------------
    async def _submit(self, request: web.Request) -> web.Response:
        body = request[BODY]
        if not isinstance(body, dict):
            return self.error("runs/submit", 400, "INVALID_PARAMETER_VALUE", "Expected a JSON object")
        problem = check_submit(body)
        if problem:
            return self.error("runs/submit", 400, "INVALID_PARAMETER_VALUE", problem)
        token = body.get("idempotency_token")
        if token is not None:
            if not isinstance(token, str) or len(token) > 64:
                return self.error("runs/submit", 400, "INVALID_PARAMETER_VALUE",
                                   "idempotency_token must be a string of at most 64 characters")
            if token in self._tokens:
                return self.answer("runs/submit", {"run_id": self._tokens[token]})
        if len(body["tasks"]) != 1:
            return self.error("runs/submit", 400, "INVALID_PARAMETER_VALUE",
                               "the double runs one task per submitted run")
        task = body["tasks"][0]
        if "spark_python_task" not in task:
            return self.error("runs/submit", 400, "INVALID_PARAMETER_VALUE",
                               "the double runs spark_python_task only")
        if body.get("git_source"):
            return self.error("runs/submit", 400, "INVALID_PARAMETER_VALUE", "the double has no Git checkouts")
        cluster, problem = self._cluster_for(task)
        if problem:
            return self.error("runs/submit", 400, "INVALID_PARAMETER_VALUE", problem)
        run_id = next(self._ids)
        run = Run(run_id=run_id, task_run_id=next(self._ids), job_id=next(self._jobs), request=body,
                  base_url=self.url)
        self.runs[run_id] = run
        if token is not None:
            self._tokens[token] = run_id
        with self._lock:
            fate = self._fates.pop(0) if self._fates else None
        executor = Executor(run, cluster, queue_s=self.queue_s, setup_s=self.setup_s, cleanup_s=self.cleanup_s,
                            resolve_file=self._resolve_file, fate=fate, scratch_root=self.root)
        self._executions[run_id] = asyncio.ensure_future(executor.life())
        return self.answer("runs/submit", {"run_id": run_id})

    def _cluster_for(self, task: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        if task.get("existing_cluster_id"):
            cluster = self.clusters.get(task["existing_cluster_id"])
            if cluster is None:
                return {}, f"Cluster {task['existing_cluster_id']} does not exist"
            return cluster, None
        spec = task.get("new_cluster")
        if not spec:
            return {}, "the double needs new_cluster or existing_cluster_id (no serverless compute)"
        if not spec.get("spark_version"):
            return {}, "Missing required field: spark_version"
        if spec.get("num_workers") is None and not spec.get("autoscale"):
            return {}, "Missing required field: num_workers or autoscale"
        return {**spec, "cluster_id": f"0101-{next(self._ids):06d}-jobcluster"}, None

    def _find(self, endpoint: str, raw: Any) -> tuple[Run | None, bool, web.Response | None]:
        """The run a run_id names (a run, or its task's run), whether it is the task's, or an error answer."""
        try:
            run_id = int(raw)
        except (TypeError, ValueError):
            return None, False, self.error(endpoint, 400, "INVALID_PARAMETER_VALUE",
                                            f"Invalid value for run_id: {raw!r}")
        if run_id in self.runs:
            return self.runs[run_id], False, None
        for run in self.runs.values():
            if run.task_run_id == run_id:
                return run, True, None
        return None, False, self.error(endpoint, 400, "INVALID_PARAMETER_VALUE", f"Run {run_id} does not exist.")

    async def _get(self, request: web.Request) -> web.Response:
        run, is_task, error = self._find("runs/get", request.query.get("run_id"))
        if error is not None:
            return error
        assert run is not None
        return self.answer("runs/get", run.task_run_view() if is_task else run.view())

    async def _get_output(self, request: web.Request) -> web.Response:
        run, is_task, error = self._find("runs/get-output", request.query.get("run_id"))
        if error is not None:
            return error
        assert run is not None
        if not is_task:
            return self.error("runs/get-output", 400, "INVALID_PARAMETER_VALUE",
                               "Retrieving the output of runs with multiple tasks is not supported. Please retrieve "
                               "the output of each individual task run instead.")
        return self.answer("runs/get-output", run.output())

    async def _cancel(self, request: web.Request) -> web.Response:
        body = request[BODY]
        run, _, error = self._find("runs/cancel", (body or {}).get("run_id"))
        if error is not None:
            return error
        assert run is not None
        if not run.terminal:
            run.cancel_requested.set()
        return self.answer("runs/cancel", {})

    async def _resolve_file(self, uri: str, scratch: str) -> str:
        """A ``python_file`` as a local file: object stores are read with the caller's credentials (the
        environment's), ``dbfs:/``, ``/Workspace/`` and ``/Volumes/`` are folders of the double's root."""
        target = os.path.join(scratch, os.path.basename(uri) or "main.py")
        if "://" in uri and not uri.startswith(("file://", "dbfs:/")):
            import obstore
            from obstore.store import from_url

            bucket, _, key = uri.split("://", 1)[1].partition("/")
            store = from_url(f"{uri.split('://', 1)[0]}://{bucket}/")
            try:
                data = bytes(await (await obstore.get_async(store, key)).bytes_async())
            except FileNotFoundError:
                raise FileNotFoundError(f"{uri} does not exist") from None
            with open(target, "wb") as handle:
                handle.write(data)
            return target
        if uri.startswith("file://"):
            path = uri[len("file://"):]
        elif uri.startswith("dbfs:/"):
            path = os.path.join(self.root, "dbfs", uri[len("dbfs:/"):].lstrip("/"))
        elif uri.startswith(("/Workspace/", "/Volumes/")):
            path = os.path.join(self.root, uri.lstrip("/"))
        else:
            path = uri
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{uri} does not exist")
        return path
