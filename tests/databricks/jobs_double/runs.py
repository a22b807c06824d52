"""One submitted run of the double: its life cycle, and the ``spark_python_task`` it really executes.

QUEUED -> PENDING (the cluster being set up) -> RUNNING (the driver process runs) -> TERMINATING (cleanup) ->
TERMINATED with a result state; or INTERNAL_ERROR / SKIPPED when a fault says so. The driver is pyspark's
``spark-submit`` in client mode (``local[N]``, N = the cluster's workers, 1 to 2), started in a process group of its
own that a cancel or a timeout kills; it runs the task's ``python_file`` with its ``parameters`` as a Databricks
driver would, with ``DATABRICKS_RUNTIME_VERSION`` set from the cluster's ``spark_version`` and the cluster's
``spark_env_vars``. Its stdout is the run's ``logs`` (runs/get-output), the end of its stderr the ``error_trace``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

LOGS_LIMIT = 5 * 1024 * 1024  # runs/get-output returns the last 5 MB of a run's output
TRACE_LINES = 60
KILL_GRACE_S = 5.0

# runs/get's RunStatus (the "v2" life cycle) for each life-cycle state, and termination details per result.
_V2 = {"QUEUED": "QUEUED", "PENDING": "PENDING", "RUNNING": "RUNNING", "TERMINATING": "TERMINATING",
       "TERMINATED": "TERMINATED", "SKIPPED": "TERMINATED", "INTERNAL_ERROR": "TERMINATED"}
_TERMINATION = {
    "SUCCESS": ("SUCCESS", "SUCCESS"), "FAILED": ("RUN_EXECUTION_ERROR", "CLIENT_ERROR"),
    "TIMEDOUT": ("CANCELED", "CLIENT_ERROR"), "CANCELED": ("USER_CANCELED", "SUCCESS"),
    "SKIPPED": ("SKIPPED", "CLIENT_ERROR"), "INTERNAL_ERROR": ("INTERNAL_ERROR", "INTERNAL_ERROR"),
}
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)|flyte\.runtime)\b.*")


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of the process group ``pgid``."""
    import psutil

    members = []
    for process in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if process.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(process.pid) == pgid:
                members.append(process.pid)
    return members


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Timing:
    start_ms: int = 0
    running_ms: int = 0
    terminating_ms: int = 0
    end_ms: int = 0

    def fields(self) -> dict[str, int]:
        now = now_ms()
        setup = (self.running_ms or self.terminating_ms or self.end_ms or now) - self.start_ms
        execution = ((self.terminating_ms or self.end_ms or now) - self.running_ms) if self.running_ms else 0
        cleanup = ((self.end_ms or now) - self.terminating_ms) if self.terminating_ms else 0
        out = {"start_time": self.start_ms, "setup_duration": max(0, setup),
               "execution_duration": max(0, execution), "cleanup_duration": max(0, cleanup),
               "end_time": self.end_ms}
        if self.end_ms:
            out["run_duration"] = self.end_ms - self.start_ms
        return out


@dataclass
class Run:
    run_id: int
    task_run_id: int
    job_id: int
    request: dict[str, Any]
    base_url: str
    life_cycle: str = "QUEUED"
    result: str | None = None
    message: str = "Queued"
    by_user_or_timeout: bool = False
    timing: Timing = field(default_factory=Timing)
    history: list[str] = field(default_factory=list)
    logs: str = ""
    logs_truncated: bool = False
    error: str = ""
    error_trace: str = ""
    cluster_id: str = ""
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)
    pid: int | None = None

    @property
    def task(self) -> dict[str, Any]:
        return self.request["tasks"][0]

    @property
    def terminal(self) -> bool:
        return self.life_cycle in ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")

    def page(self, run_id: int) -> str:
        return f"{self.base_url}/?o=1234567890#job/{self.job_id}/run/{run_id}"

    def move(self, life_cycle: str, message: str, result: str | None = None) -> None:
        self.life_cycle, self.message = life_cycle, message
        if result is not None:
            self.result = result
        self.history.append(life_cycle if result is None else f"{life_cycle}/{result}")
        stamp = now_ms()
        if life_cycle == "RUNNING":
            self.timing.running_ms = stamp
        elif life_cycle == "TERMINATING":
            self.timing.terminating_ms = stamp
        elif self.terminal:
            self.timing.end_ms = stamp

    # -- what runs/get and runs/get-output answer ------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"life_cycle_state": self.life_cycle, "state_message": self.message,
                                 "user_cancelled_or_timedout": self.by_user_or_timeout}
        if self.life_cycle == "QUEUED":
            state["queue_reason"] = "Queued behind other runs of this workspace"
        if self.life_cycle == "TERMINATED" and self.result:
            state["result_state"] = self.result
        return state

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {"state": _V2[self.life_cycle]}
        outcome = self.result if self.life_cycle == "TERMINATED" else self.life_cycle
        if self.terminal and outcome in _TERMINATION:
            code, kind = _TERMINATION[outcome]
            status["termination_details"] = {"code": code, "type": kind, "message": self.message}
        return status

    def _common(self, run_id: int) -> dict[str, Any]:
        return {"job_id": self.job_id, "run_id": run_id, "state": self.state(), "status": self.status(),
                **self.timing.fields(), "run_page_url": self.page(run_id), "attempt_number": 0}

    def task_view(self) -> dict[str, Any]:
        """The run's one task, as runs/get lists it."""
        view = {"task_key": self.task.get("task_key", "task"), **self._common(self.task_run_id)}
        view.pop("job_id")
        for key in ("spark_python_task", "new_cluster", "existing_cluster_id", "libraries", "timeout_seconds",
                    "description"):
            if key in self.task:
                view[key] = self.task[key]
        if self.cluster_id:
            view["cluster_instance"] = {"cluster_id": self.cluster_id}
            if self.timing.running_ms:
                view["cluster_instance"]["spark_context_id"] = str(self.run_id * 7919)
        return view

    def view(self) -> dict[str, Any]:
        """runs/get of the run."""
        return {**self._common(self.run_id), "number_in_job": self.run_id, "original_attempt_run_id": self.run_id,
                "creator_user_name": "flyte-tests@example.com", "run_name": self.request.get("run_name", "Untitled"),
                "run_type": "SUBMIT_RUN", "trigger": "ONE_TIME", "tasks": [self.task_view()]}

    def task_run_view(self) -> dict[str, Any]:
        """runs/get of the run's task run (a Run, without the task's own fields)."""
        return {**self._common(self.task_run_id), "run_name": self.request.get("run_name", "Untitled"),
                "run_type": "SUBMIT_RUN", "trigger": "ONE_TIME"}

    def output(self) -> dict[str, Any]:
        """runs/get-output of the task run."""
        out: dict[str, Any] = {"metadata": self.task_run_view()}
        if self.timing.running_ms:
            out["logs"] = self.logs
            out["logs_truncated"] = self.logs_truncated
        if self.error:
            out["error"] = self.error
        if self.error_trace:
            out["error_trace"] = self.error_trace
        return out


@dataclass
class Fate:
    """A fault to apply to a run: end in ``life_cycle`` (INTERNAL_ERROR, SKIPPED) from PENDING."""

    life_cycle: str
    message: str


class Executor:
    """Runs one Run's life cycle on the double's loop."""

    def __init__(self, run: Run, cluster: dict[str, Any], *, queue_s: float, setup_s: float, cleanup_s: float,
                 resolve_file: Any, fate: Fate | None, scratch_root: str) -> None:
        self.run = run
        self.cluster = cluster
        self.queue_s, self.setup_s, self.cleanup_s = queue_s, setup_s, cleanup_s
        self.resolve_file = resolve_file
        self.fate = fate
        self.scratch_root = scratch_root
        self.process: asyncio.subprocess.Process | None = None

    def timeout_s(self) -> float | None:
        limits = [t for t in (self.run.request.get("timeout_seconds"), self.run.task.get("timeout_seconds")) if t]
        return float(min(limits)) if limits else None

    async def life(self) -> None:
        run = self.run
        run.timing.start_ms = now_ms()
        run.history.append("QUEUED")
        deadline = (time.monotonic() + self.timeout_s()) if self.timeout_s() else None
        try:
            if await self._pause(self.queue_s):
                return await self._cancelled_before_start()
            run.move("PENDING", "Waiting for cluster" if "new_cluster" in run.task else "Waiting for the cluster's "
                                "execution context")
            if await self._pause(self.setup_s):
                return await self._cancelled_before_start()
            if self.fate is not None:
                run.move(self.fate.life_cycle, self.fate.message)
                return
            run.cluster_id = self.cluster["cluster_id"]
            await self._execute(deadline)
        except Exception as exc:  # the double itself failed: say so as the service would
            if not run.terminal:
                run.move("INTERNAL_ERROR", f"Jobs service error: {type(exc).__name__}: {exc}")
            raise

    async def _pause(self, seconds: float) -> bool:
        """Wait ``seconds``; True if the run was cancelled meanwhile."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.run.cancel_requested.wait(), seconds)
        return self.run.cancel_requested.is_set()

    async def _cancelled_before_start(self) -> None:
        self.run.by_user_or_timeout = True
        self.run.move("TERMINATING", "Run cancellation requested")
        await asyncio.sleep(self.cleanup_s)
        self.run.move("TERMINATED", "Run was cancelled", "CANCELED")

    async def _execute(self, deadline: float | None) -> None:
        run = self.run
        scratch = tempfile.mkdtemp(prefix=f"dbx-run{run.run_id}-", dir=self.scratch_root)
        try:
            try:
                script = await self.resolve_file(run.task["spark_python_task"]["python_file"], scratch)
            except FileNotFoundError as exc:
                run.move("TERMINATING", "Workload failed, see run output for details")
                run.error = f"FileNotFoundError: {exc}"
                await asyncio.sleep(self.cleanup_s)
                run.move("TERMINATED", "Workload failed, see run output for details", "FAILED")
                return
            stdout_path, stderr_path = os.path.join(scratch, "stdout"), os.path.join(scratch, "stderr")
            with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
                self.process = await asyncio.create_subprocess_exec(
                    *self.command(script, scratch), cwd=scratch, env=self.environment(scratch),
                    stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
            run.pid = self.process.pid
            run.move("RUNNING", "In run")
            ended = asyncio.ensure_future(self.process.wait())
            cancelled = asyncio.ensure_future(run.cancel_requested.wait())
            try:
                limit = None if deadline is None else max(0.0, deadline - time.monotonic())
                await asyncio.wait({ended, cancelled}, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
            finally:
                cancelled.cancel()
            if ended.done():
                code = ended.result()
                result, message = ("SUCCESS", "") if code == 0 else \
                    ("FAILED", "Workload failed, see run output for details")
            elif run.cancel_requested.is_set():
                run.by_user_or_timeout = True
                result, message = "CANCELED", "Run was cancelled"
            else:
                run.by_user_or_timeout = True
                result, message = "TIMEDOUT", f"Run timed out after {self.timeout_s():g} seconds"
            run.move("TERMINATING", message or "Cleaning up")
            code = await self.kill()
            self._collect(stdout_path, stderr_path, result, code)
            await asyncio.sleep(self.cleanup_s)
            run.move("TERMINATED", message, result)
        finally:
            if self.process is not None and self.process.returncode is None:
                await self.kill()
            shutil.rmtree(scratch, ignore_errors=True)

    def command(self, script: str, scratch: str) -> list[str]:
        import pyspark

        submit = os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-submit")
        cluster = self.cluster
        workers = cluster.get("num_workers") or (cluster.get("autoscale") or {}).get("max_workers") or 1
        conf = {
            "spark.ui.enabled": "false", "spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
            "spark.local.dir": scratch, "spark.ui.showConsoleProgress": "false",
            "spark.driver.extraJavaOptions": f"-Djava.io.tmpdir={scratch}",
            **(cluster.get("spark_conf") or {}),
        }
        argv = [submit, "--master", f"local[{min(max(int(workers), 1), 2)}]", "--deploy-mode", "client",
                "--name", self.run.request.get("run_name", "Untitled")]
        for key, value in conf.items():
            if key not in ("spark.master", "spark.submit.deployMode"):
                argv += ["--conf", f"{key}={value}"]
        parameters = [self.mounted(str(p)) for p in self.run.task["spark_python_task"].get("parameters") or []]
        return argv + [script, *parameters]

    def mounted(self, path: str) -> str:
        """A cluster sees volumes as files at /Volumes/...: here they are under the double's root."""
        return os.path.join(self.scratch_root, path.lstrip("/")) if path.startswith("/Volumes/") else path

    def environment(self, scratch: str) -> dict[str, str]:
        version = re.match(r"^(\d+\.\d+)", self.cluster.get("spark_version", "15.4.x-scala2.12"))
        env = {**os.environ, **(self.cluster.get("spark_env_vars") or {})}
        env.update({"DATABRICKS_RUNTIME_VERSION": version.group(1) if version else "15.4",
                    "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
                    "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOCAL_DIRS": scratch, "TMPDIR": scratch,
                    "DB_CLUSTER_ID": self.cluster["cluster_id"]})
        env.pop("PYSPARK_GATEWAY_PORT", None)
        env.pop("PYSPARK_GATEWAY_SECRET", None)
        return env

    async def kill(self) -> int | None:
        """End the driver and everything it started (its process group): SIGTERM, then SIGKILL."""
        process = self.process
        if process is None:
            return None
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), KILL_GRACE_S)
            except asyncio.TimeoutError:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the JVM's Python workers too
        code = await process.wait()
        for _ in range(100):  # the run has ended once nothing of its group is left (zombies aside)
            if not group_members(process.pid):
                break
            await asyncio.sleep(0.05)
        return code

    def _collect(self, stdout_path: str, stderr_path: str, result: str, code: int | None) -> None:
        """``logs`` from the driver's stdout (spark-submit passes the Python process's stderr there too); for a
        failed run, ``error`` and ``error_trace`` from the last Python traceback it printed."""
        run = self.run
        with open(stdout_path, "rb") as handle:
            data = handle.read()
        run.logs_truncated = len(data) > LOGS_LIMIT
        run.logs = data[-LOGS_LIMIT:].decode(errors="replace")
        if result != "FAILED":
            return
        with open(stderr_path, "rb") as handle:
            lines = run.logs.splitlines() + handle.read().decode(errors="replace").splitlines()
        starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last):")]
        if starts:
            block = lines[starts[-1]:]
            ends = [i for i, line in enumerate(block) if i and _EXCEPTION_LINE.match(line)]
            block = block[:ends[0] + 1] if ends else block
            run.error_trace = "\n".join(block[-TRACE_LINES:])
            run.error = block[-1] if ends else f"Python process exited with code {code}"
        else:
            run.error_trace = "\n".join(lines[-TRACE_LINES:])
            run.error = f"Python process exited with code {code}"
