"""The embedded tier: a Ray instance on this machine, started for a run and stopped with it.

``ray.init()`` starts the GCS, raylet and workers as children of the thread that calls it, and Ray asks Linux to kill
them when that *thread* exits (``PR_SET_PDEATHSIG``). A pooled worker thread (``anyio.to_thread``) exits when idle,
which would take the instance down mid-run; the event loop's thread must stay free. So each instance gets an owner
thread that starts Ray, waits for the stop request and shuts Ray down: the instance lives exactly as long as it.

Ray installs its SIGTERM handler (exit through ``atexit``, which stops the instance) only from the main thread; when
the run's loop is on the main thread we install the same handler there, so a terminated driver leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import inspect
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from flyte.extend import kill_processes_naming, run_blocking

from . import _user_init
from ._sizing import LocalSize

log = logging.getLogger("flyteplugins.ray")

_STOP_TIMEOUT_S = 60.0
_HARD_ABORT_S = 2.0
# Worker output reaches the driver through Ray's log monitor, which polls the workers' log files; a shutdown right
# after the last task would drop what it has not forwarded yet.
_LOG_FLUSH_GRACE_S = 1.0


@dataclass(frozen=True)
class LocalSpec:
    """What the local instance must look like; equal specs share one instance (warm calls)."""

    size: LocalSize
    runtime_env: str  # JSON of the job's runtime_env, "null" for none
    code_paths: tuple[str, ...]  # directories put on the workers' import path


@dataclass
class RayHandle:
    """A live Ray connection in this process: the local instance (``tier="embedded"``) or a cluster (``"attach"``)."""

    tier: str
    address: str
    dashboard_url: str | None
    temp_dir: str | None = None
    owner: _Owner | None = field(default=None, repr=False)


class _Owner:
    """The thread that owns a local Ray instance from ``ray.init`` to ``ray.shutdown``."""

    def __init__(self, spec: LocalSpec) -> None:
        self.spec = spec
        # Ray's sockets and session files; its path on every Ray process's command line marks them as this
        # instance's (see abort_start).
        self.temp_dir = _short_temp_dir()
        self.started = threading.Event()
        self.stop_requested = threading.Event()
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        self.handle: RayHandle | None = None
        self.aborts = 0
        self._abort_lock = threading.Lock()
        self._init_done = False
        # Daemon: interpreter exit joins non-daemon threads *before* atexit, where the pool stops this one.
        self.thread = threading.Thread(target=self._run, name="flyte-ray-owner", daemon=True)

    def _run(self) -> None:
        temp_dir = self.temp_dir
        import ray

        try:
            with _children_temp_dir(os.path.join(temp_dir, "tmp")):
                context = ray.init(**_init_kwargs(self.spec, temp_dir))
            with self._abort_lock:  # from here on no abort may land: one still pending is withdrawn
                self._init_done = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(threading.get_ident()), None)
            _user_init.adopt()
        except BaseException as exc:  # a failed start, or abort_start's _StartAborted
            self.error = exc
            self._forget_partial_start()
            self.started.set()
            self.stopped.set()
            return
        dashboard = context.dashboard_url if self.spec.size.include_dashboard else None
        gcs_address = context.address_info.get("gcs_address", "")  # type: ignore[attr-defined]
        self.handle = RayHandle(tier="embedded", address=gcs_address,
                                dashboard_url=f"http://{dashboard}" if dashboard else None,
                                temp_dir=temp_dir, owner=self)
        self.started.set()
        self.stop_requested.wait()
        if ray.is_initialized() and not self.aborts:  # at exit Ray's own atexit hook may have shut it down already
            time.sleep(_LOG_FLUSH_GRACE_S)
        try:
            _user_init.release()
            ray.shutdown()
        except Exception:
            log.exception("ray.shutdown() of the local instance failed")
        finally:
            shutil.rmtree(temp_dir, ignore_errors=True)
            self.stopped.set()

    def _forget_partial_start(self) -> None:
        import ray

        try:
            ray.shutdown()  # resets what a half-done ray.init set up, so a later start begins clean
        except BaseException:
            log.debug("ray.shutdown() after a failed start failed", exc_info=True)
        # Processes the half-done start spawned that ray.shutdown() did not know of (the raylet's agents).
        kill_processes_naming(self.temp_dir)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def abort_start(self) -> None:
        """Stop a ``ray.init`` under way on the owner thread (a timeout or Ctrl-C during a cold start).

        Killing Ray's processes instead would leave ``ray.init`` waiting for its GCS, and after 60 s Ray ends the
        whole process. An exception raised in the owner thread makes ``ray.init`` give up within moments; when the
        thread ends, Ray's processes die with it (Ray ties them to the thread that started them)."""
        with self._abort_lock:
            if self.thread.ident is None:
                return
            self.aborts += 1
            if self.aborts == 1:
                if not self._init_done:  # else the abandoned start's discard (stop_local) stops the instance
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread.ident),
                                                               ctypes.py_object(_StartAborted))
                return
        # Asked again, at interpreter exit: ray.init was out of the exception's reach (inside Ray's C++ code, or
        # Ray's own code caught it), or the discarding stop has not finished. The process is ending: kill what the
        # start spawned and remove its files. Repeated until nothing is found twice in a row: a process being
        # spawned at the first pass (an agent the raylet starts) shows up only at a later one.
        deadline, quiet_passes = time.monotonic() + _HARD_ABORT_S, 0
        while quiet_passes < 2 and time.monotonic() < deadline:
            quiet_passes = 0 if kill_processes_naming(self.temp_dir) else quiet_passes + 1
            time.sleep(0.1)
        if self._init_done:  # this process's own Ray worker writes into the temp dir until it is shut down
            self.stop_requested.set()
            self.stopped.wait(_HARD_ABORT_S)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@contextlib.contextmanager
def _children_temp_dir(path: str) -> Iterator[None]:
    """Ray's processes (GCS, raylet, dashboard, and the workers the raylet starts) take their environment from this
    process when ``ray.init`` launches them: pointing their TMPDIR into the instance's temp dir makes what they leave
    there when they are killed (the dashboard's multiprocessing ``pymp-*`` dirs) go with it. This process's own temp
    dir is unaffected (``tempfile`` has resolved it already)."""
    tempfile.gettempdir()
    os.makedirs(path, exist_ok=True)
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = path
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = before


class _StartAborted(BaseException):
    """Raised in the owner thread to abort ``ray.init``. A BaseException, so that Ray's own ``except Exception``
    around parts of its start (the dashboard's) does not swallow it."""


def _init_kwargs(spec: LocalSpec, temp_dir: str) -> dict[str, Any]:
    import ray

    size = spec.size
    kwargs: dict[str, Any] = {
        "address": "local",  # always a new instance, even where RAY_ADDRESS points at a cluster
        "num_cpus": size.num_cpus,
        "num_gpus": size.num_gpus,
        "include_dashboard": size.include_dashboard,
        "log_to_driver": True,
        "_temp_dir": temp_dir,
    }
    if size.include_dashboard:
        kwargs["dashboard_host"] = size.dashboard_host
        if size.dashboard_port is not None:
            kwargs["dashboard_port"] = size.dashboard_port
    if size.memory is not None:
        kwargs["_memory"] = size.memory
    if size.object_store_memory is not None:
        kwargs["object_store_memory"] = size.object_store_memory
    resources = json.loads(size.resources)
    if resources:
        kwargs["resources"] = resources
    runtime_env = json.loads(spec.runtime_env) or {}
    if spec.code_paths:
        # The driver's import path is how a plain ray.init() hands its script directory to local workers; Ray's
        # code_search_path would instead make the driver re-import modules by name (re-running a script).
        if "_py_driver_sys_path" in inspect.signature(ray.job_config.JobConfig).parameters:
            kwargs["job_config"] = ray.job_config.JobConfig(_py_driver_sys_path=list(spec.code_paths))
        elif "working_dir" not in runtime_env:
            runtime_env["working_dir"] = spec.code_paths[0]
    if runtime_env:
        kwargs["runtime_env"] = runtime_env
    return kwargs


# The longest socket path Ray makes under its temp dir, past the temp dir itself (a 7-digit pid at most).
_LONGEST_SOCKET_TAIL = "/flyte-ray-xxxxxxxx/session_2026-01-01_00-00-00_000000_1234567/sockets/plasma_store"
_UNIX_SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes, the last one the terminating NUL


def _short_temp_dir() -> str:
    """A new temp dir for the instance, under the user's TMPDIR unless Ray's socket paths would not fit there."""
    base = tempfile.gettempdir()
    if len(base) + len(_LONGEST_SOCKET_TAIL) > _UNIX_SOCKET_PATH_MAX:
        base = "/tmp"
    return tempfile.mkdtemp(prefix="flyte-ray-", dir=base)


async def start_local(spec: LocalSpec) -> RayHandle:
    """Start the local instance (blocking work off the event loop) and return its handle."""
    import ray  # noqa: F401  (imported here so the owner thread does not hold the import lock for long)

    if ray.is_initialized():
        raise RuntimeError(
            "flyteplugins.ray: Ray is already initialized in this process by other code; call ray.shutdown() "
            "before running Ray tasks, or set RayJobConfig(address=...) to use an existing cluster"
        )
    _install_sigterm_handler()
    silence_thread_warning()
    # Ray's C++ failure handler (absl) would take SIGTERM in this process and abort it (SIGABRT) instead of letting
    # the run stop cleanly and exit through Python; crash stack dumps of Ray's own code are what is given up.
    # Ray reads the setting when it is imported, and the user's script has usually imported it already.
    if "RAY_DISABLE_FAILURE_SIGNAL_HANDLER" not in os.environ:
        ray._private.ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = True
    owner = _Owner(spec)
    owner.thread.start()

    def started() -> RayHandle:
        owner.started.wait()
        if owner.error is not None:
            raise owner.error
        assert owner.handle is not None
        return owner.handle

    # A timeout or Ctrl-C during ray.init kills the processes it started (ray.init then fails); an instance that
    # still comes up after the caller has gone is shut down.
    return await run_blocking(started, interrupt=owner.abort_start, discard=stop_local, name="flyte-ray-start")


def stop_local(handle: RayHandle) -> None:
    """Shut the instance down and remove its temp dir; waits for the owner thread."""
    owner = handle.owner
    if owner is None:
        return
    owner.stop_requested.set()
    if not owner.stopped.wait(_STOP_TIMEOUT_S):
        log.error("the local Ray instance did not stop within %.0fs", _STOP_TIMEOUT_S)
    if handle.temp_dir:
        kill_processes_naming(handle.temp_dir)  # anything the stop missed
        shutil.rmtree(handle.temp_dir, ignore_errors=True)


def cancel_driver_tasks() -> None:
    """Stop all Ray work this driver started, so that a task body blocked in ``ray.get``/``ray.wait`` raises at once:
    every task it owns or borrows a reference to is cancelled (forced: its worker is killed, so sleeping and
    CPU-bound tasks stop too; recursively: their children too), and the job's live actors are killed. Ray keeps no
    list of a driver's tasks; the references the driver holds (what ``ray memory`` lists) lead to them."""
    import ray

    if not ray.is_initialized():
        return
    worker = ray._private.worker.global_worker
    core_worker = worker.core_worker  # type: ignore[attr-defined]
    for object_id in list(core_worker.get_all_reference_counts()):
        hex_id = object_id.decode() if isinstance(object_id, bytes) else str(object_id)
        ref: Any = ray.ObjectRef(bytes.fromhex(hex_id))
        try:
            ray.cancel(ref, force=True, recursive=True)
        except ValueError:  # an actor task: force is not supported for those (the actor is killed below)
            pass
        except Exception:  # a ray.put object or a finished task: nothing to cancel
            pass
    try:
        actors = ray._private.state.actors(job_id=worker.current_job_id)  # type: ignore[attr-defined]
    except Exception:
        actors = {}
    for actor_id, info in actors.items():
        if info.get("State") != "DEAD":
            try:
                core_worker.kill_actor(ray.ActorID(bytes.fromhex(actor_id)), True)
            except Exception:
                log.debug("killing actor %s failed", actor_id, exc_info=True)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    sys.exit(128 + signum)


def _install_sigterm_handler() -> None:
    """Make SIGTERM exit through ``atexit`` (which stops the instance), as Ray does when started on the main thread.
    Only where SIGTERM still has its default action, so a handler the program set is left alone."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)


class _DropThreadWarning(logging.Filter):
    """Ray warns that it set no SIGTERM handler when started off the main thread; we set it (see module doc)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


_thread_warning_filter = _DropThreadWarning()


def silence_thread_warning() -> None:
    logging.getLogger("ray._private.worker").addFilter(_thread_warning_filter)  # idempotent for one filter

