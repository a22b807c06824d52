"""The SparkSession engine: what a session must look like (its spec), and starting and stopping one cleanly.

One session per process (Spark's rule), owned by the core's engine pool under the kind ``"spark"``. Static settings
(master, executors, memory, jars, Hadoop settings...) are fixed when the JVM starts, so they make up the spec: a call
that needs other static settings makes the pool restart the session. Runtime SQL settings (``spark.sql.*`` that
Spark lets a live session change) are left out of the spec and set per call instead, so they never cost a restart.

A clean stop is more than ``SparkSession.stop()``: pyspark keeps its py4j gateway JVM alive after that, and a later
session would reuse it with the old JVM options (driver memory...). Stopping here also ends the gateway JVM and
resets pyspark's class-level handles, and removes the scratch directory that holds all of Spark's temporary files.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from flyte.extend import kill_processes_naming

from ._config import Spark, resolve_master
from ._runtime import java_executable

log = logging.getLogger("flyteplugins.spark")

ENGINE_KIND = "spark"

# Spark SQL settings that are fixed when the session starts, although named spark.sql.*.
_STATIC_SQL_KEYS = frozenset({
    "spark.sql.warehouse.dir", "spark.sql.catalogImplementation", "spark.sql.globalTempDatabase",
    "spark.sql.extensions", "spark.sql.queryExecutionListeners", "spark.sql.streaming.streamingQueryListeners",
    "spark.sql.ui.retainedExecutions", "spark.sql.broadcastExchange.maxThreadThreshold",
    "spark.sql.subquery.maxThreadThreshold", "spark.sql.resultQueryStage.maxThreadThreshold",
    "spark.sql.event.truncate.length", "spark.sql.legacy.sessionInitWithConfigDefaults",
    "spark.sql.defaultUrlStreamHandlerFactory.enabled", "spark.sql.sources.schemaStringLengthThreshold",
    "spark.sql.filesourceTableRelationCacheSize", "spark.sql.codegen.cache.maxEntries", "spark.sql.codegen.comments",
    "spark.sql.debug", "spark.sql.metadataCacheTTLSeconds", "spark.sql.sources.disabledJdbcConnProviderList",
    "spark.sql.hive.thriftServer.singleSession", "spark.sql.cache.serializer",
})
_STATIC_SQL_PREFIXES = ("spark.sql.hive.", "spark.sql.streaming.ui.", "spark.sql.catalog.spark_catalog.default")


# Settings the gateway JVM is launched with (spark-submit and the JVM itself read them): changing one needs a new JVM.
# Every other static setting is read when a SparkContext starts, so a new context in the same JVM takes it: that is
# how an override that changes only executors or parallelism resizes in a second instead of a cold start. Hadoop
# settings count as JVM-wide, since Hadoop caches FileSystem objects per JVM.
_JVM_KEYS = frozenset({
    "spark.driver.memory", "spark.driver.extraJavaOptions", "spark.driver.defaultJavaOptions",
    "spark.driver.extraClassPath", "spark.driver.extraLibraryPath", "spark.driver.userClassPathFirst",
})
_JVM_PREFIXES = ("spark.jars", "spark.submit.", "spark.files", "spark.archives", "spark.kerberos.", "spark.hadoop.")


def is_jvm_key(key: str) -> bool:
    """Whether ``key`` is fixed when the gateway JVM is launched."""
    return key in _JVM_KEYS or key.startswith(_JVM_PREFIXES)


def is_runtime_key(key: str) -> bool:
    """Whether a live session can take ``key`` through ``spark.conf.set`` (no restart needed)."""
    return (key.startswith("spark.sql.") and key not in _STATIC_SQL_KEYS
            and not key.startswith(_STATIC_SQL_PREFIXES))


class SessionSpec(NamedTuple):
    """What the session's JVM must have been started with. Equal specs share a session."""

    master: str
    static_conf: tuple[tuple[str, str], ...]
    hadoop_conf: tuple[tuple[str, str], ...]
    python: str


class SessionPlan(NamedTuple):
    """A ``Spark`` config split into the part fixed at start and the part applied to each call."""

    master: str
    static_conf: tuple[tuple[str, str], ...]
    runtime_conf: tuple[tuple[str, str], ...]
    hadoop_conf: tuple[tuple[str, str], ...]
    python: str

    @classmethod
    def of(cls, config: Spark) -> SessionPlan:
        conf = {key: value.strip() for key, value in config.spark_conf.items()}
        master = resolve_master(conf)
        conf.pop("spark.master", None)
        static = tuple(sorted((k, v) for k, v in conf.items() if not is_runtime_key(k)))
        runtime = tuple(sorted((k, v) for k, v in conf.items() if is_runtime_key(k)))
        return cls(master=master, static_conf=static, runtime_conf=runtime,
                   hadoop_conf=tuple(sorted(config.hadoop_conf.items())),
                   python=config.executor_path or sys.executable)

    def spec(self) -> SessionSpec:
        return SessionSpec(self.master, self.static_conf, self.hadoop_conf, self.python)

    @property
    def attached(self) -> bool:
        return self.master.startswith("spark://")


@dataclass
class SparkEngine:
    """A live session and what this plugin keeps about it."""

    session: Any
    spec: SessionSpec
    scratch: str  # holds spark.local.dir, the warehouse, java.io.tmpdir: removed on stop
    gateway_proc: subprocess.Popen[bytes] | None
    ui_url: str | None
    shipped_bundles: set[str] = field(default_factory=set)

    def make_active_here(self) -> None:
        """Make the session ``SparkSession.getActiveSession()`` on this thread (the JVM keeps it per thread, and
        pyspark pins each Python thread to a JVM thread of its own). Every call: a thread id can be reused."""
        self.session._jvm.SparkSession.setActiveSession(self.session._jsparkSession)

    @property
    def stopped(self) -> bool:
        """True once the session was stopped (also by user code calling ``spark.stop()``)."""
        return getattr(self.session.sparkContext, "_jsc", None) is None


def resizable(live: SessionSpec, wanted: SessionSpec) -> bool:
    """Whether a session started to ``live`` can become one for ``wanted`` with a new SparkContext in its JVM:
    both local, same JVM settings, same Python for the workers, same Hadoop settings."""

    def jvm_part(spec: SessionSpec) -> tuple[Any, ...]:
        return (spec.python, spec.hadoop_conf, tuple(item for item in spec.static_conf if is_jvm_key(item[0])))

    return (live.master.startswith("local") and wanted.master.startswith("local")
            and jvm_part(live) == jvm_part(wanted))


def session_conf(spec: SessionSpec, app_name: str, scratch: str) -> dict[str, str]:
    """Every setting the session starts with: ours first (scratch dirs, quiet logs), the user's on top.

    Spark's local dirs default to java.io.tmpdir, which points into the scratch dir: setting spark.local.dir
    instead would make Spark warn that a cluster manager may override it."""
    conf: dict[str, str] = {
        "spark.app.name": app_name,
        "spark.sql.warehouse.dir": os.path.join(scratch, "warehouse"),
        "spark.ui.showConsoleProgress": "false",
        "spark.log.level": "WARN",
        "spark.pyspark.python": spec.python,
    }
    conf.update(spec.static_conf)
    conf["spark.master"] = spec.master
    # Keep the JVM's own temp files (java.io.tmpdir: spark-* dirs, derby) in the scratch dir too.
    tmp = os.path.join(scratch, "tmp")
    ours = f"-Djava.io.tmpdir={tmp} -Dderby.system.home={os.path.join(scratch, 'derby')}"
    theirs = conf.get("spark.driver.extraJavaOptions", "")
    conf["spark.driver.extraJavaOptions"] = f"{ours} {theirs}".strip()
    for key, value in spec.hadoop_conf:
        conf[f"spark.hadoop.{key}"] = value
    return conf


def new_scratch_dir() -> str:
    """The directory a session keeps all its temporary files in; its path on the JVM's command line also marks the
    JVM as this session's (see :func:`abort_start`)."""
    return tempfile.mkdtemp(prefix="flyte-spark-")


# Scratch dirs of starts that abort_start cut short: their JVM's lines say only that it was killed.
_aborted_starts: set[str] = set()


def abort_start(scratch: str) -> None:
    """Make a session start that is under way fail now: kill the JVM being launched for ``scratch`` (pyspark then
    raises, and :func:`start_session` cleans up)."""
    _aborted_starts.add(scratch)
    kill_processes_naming(scratch)


def start_session(spec: SessionSpec, app_name: str, scratch: str) -> SparkEngine:
    """Start a SparkSession to ``spec`` with its files under ``scratch`` (blocking: call it in a worker thread;
    :func:`abort_start` from another thread stops it). ``scratch`` is removed if the start fails."""
    try:
        return _start_session(spec, app_name, scratch)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _start_session(spec: SessionSpec, app_name: str, scratch: str) -> SparkEngine:
    if in_submitted_driver():
        return _driver_session(spec, scratch)
    java_executable()  # fail with a clear message before pyspark waits for a gateway that never comes
    from pyspark import SparkContext

    if SparkContext._active_spark_context is not None:
        raise RuntimeError(
            "Spark: a SparkContext that flyte did not start is running in this process; its settings cannot be "
            "changed, so stop it (spark.stop()) before running Spark tasks"
        )
    # A stopped context leaves its gateway JVM behind; a new session would inherit that JVM's options.
    shutdown_gateway()

    # pyspark's driver takes its Python workers' interpreter from PYSPARK_PYTHON alone (not spark.pyspark.python),
    # else `python3` on PATH: often another interpreter, without the user's packages (an unactivated venv).
    if spec.python != sys.executable or "PYSPARK_PYTHON" not in os.environ:
        os.environ["PYSPARK_PYTHON"] = spec.python

    output: _JvmOutput | None = None
    try:
        for sub in ("warehouse", "tmp", "derby"):
            os.makedirs(os.path.join(scratch, sub), exist_ok=True)
        conf = _embedded_conf(spec, app_name, scratch)
        output = _JvmOutput()
        _launch_gateway(conf, output)
        session = _new_session(conf)
    except BaseException:
        shutdown_gateway()
        if output is not None:  # the JVM's own account of why it did not start, unless we stopped it
            output.release(show_held=scratch not in _aborted_starts)
        _aborted_starts.discard(scratch)
        raise
    output.release(show_held=False)
    gateway = SparkContext._gateway
    return SparkEngine(session=session, spec=spec, scratch=scratch,
                       gateway_proc=getattr(gateway, "proc", None), ui_url=session.sparkContext.uiWebUrl)


def in_submitted_driver() -> bool:
    """Whether this process is the driver of a SparkApplication (a remote run on Kubernetes): spark-submit started
    it with its gateway JVM, whose configuration is the application's."""
    from flyte.extend import in_remote_pod

    return bool(os.environ.get("PYSPARK_GATEWAY_PORT")) and in_remote_pod()


def _driver_session(spec: SessionSpec, scratch: str) -> SparkEngine:
    from pyspark.sql import SparkSession

    session = SparkSession.builder.getOrCreate()
    return SparkEngine(session=session, spec=spec, scratch=scratch, gateway_proc=None,
                       ui_url=session.sparkContext.uiWebUrl)


def _embedded_conf(spec: SessionSpec, app_name: str, scratch: str) -> dict[str, str]:
    conf = session_conf(spec, app_name, scratch)
    if "spark.jars" in conf:
        conf["spark.jars"] = _reachable_jars(conf["spark.jars"])
    return conf


@functools.lru_cache(maxsize=32)  # a resize asks again: one lookup and one warning per setting in a process
def _reachable_jars(jars: str) -> str:
    """``spark.jars`` without the remote jars whose host cannot be resolved from here.

    spark-submit downloads remote jars before the JVM starts, and one unreachable host ends the start
    (UnknownHostException): programs written for a cluster (flyte-sdk's Spark example lists GCS and S3 connector jars)
    would not run on a machine without that network at all. Such jars are left out with a warning; the session
    then lacks only their classes."""
    import socket
    from urllib.parse import urlparse

    kept = []
    for jar in (j.strip() for j in jars.split(",")):
        if not jar:
            continue
        parsed = urlparse(jar)
        if parsed.scheme in ("http", "https", "ftp") and parsed.hostname:
            try:
                socket.getaddrinfo(parsed.hostname, parsed.port or 443)
            except OSError as exc:
                log.warning("Spark: spark.jars entry %s left out of the local session: %s cannot be reached (%s); "
                            "its classes will be missing", jar, parsed.hostname, exc)
                continue
        kept.append(jar)
    return ",".join(kept)


def resize_session(engine: SparkEngine, spec: SessionSpec, app_name: str) -> SparkEngine:
    """Stop ``engine``'s SparkContext and start one to ``spec`` in the same JVM (blocking). ``spec`` must be
    :func:`resizable` from ``engine.spec``. If that fails the whole engine is stopped."""
    try:
        engine.session.stop()
        session = _new_session(_embedded_conf(spec, app_name, engine.scratch))
    except BaseException:
        stop_session(engine)
        raise
    return SparkEngine(session=session, spec=spec, scratch=engine.scratch, gateway_proc=engine.gateway_proc,
                       ui_url=session.sparkContext.uiWebUrl)


def _new_session(conf: dict[str, str]) -> Any:
    """A SparkSession with exactly ``conf`` on the running gateway JVM."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


class _JvmOutput:
    """The gateway JVM's stdout and stderr, passed on to this process's file descriptor 2 (where they went when the
    JVM inherited it), except that what it prints while the session starts (incubator modules, loopback hostname,
    log4j profile, native-hadoop: about ten lines at every start) is held back and shown only if the start fails.
    ``FLYTE_ENGINE_LOGS=1`` shows it all.

    The pump must keep draining whatever happens: the JVM and the Python workers it forks block once the pipe is full.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: list[bytes] | None = [] if os.environ.get("FLYTE_ENGINE_LOGS", "") in ("", "0") else None
        read_end, self.write_end = os.pipe()  # ours before the JVM exists, so a failed launch is read too
        self._done = threading.Event()
        threading.Thread(target=self._pump, args=(read_end,), name="flyte-spark-jvm-output", daemon=True).start()

    def _pump(self, read_end: int) -> None:
        try:
            with os.fdopen(read_end, "rb") as stream:
                for line in iter(stream.readline, b""):
                    with self._lock:
                        if self._held is not None:
                            self._held.append(line)
                            continue
                    _write_stderr(line)
        except Exception:  # noqa: BLE001 - nowhere to report it; the pipe's end closing ends the JVM's output too
            pass
        finally:
            self._done.set()

    def release(self, show_held: bool) -> None:
        if show_held:  # a failed start: the JVM has exited or is being stopped; take all it said
            self._done.wait(5)
        with self._lock:
            held, self._held = self._held or [], None
        if show_held and held:
            _write_stderr(b"".join(held))


def _write_stderr(data: bytes) -> None:
    """Write to fd 2, never raising: a closed or full stderr must not stop the pump."""
    try:
        while data:
            data = data[os.write(2, data):]
    except OSError:
        pass


def _launch_gateway(conf: dict[str, str], output: _JvmOutput) -> None:
    """Launch pyspark's gateway JVM with the JVM-level part of ``conf`` and its output going to ``output``;
    ``getOrCreate`` then uses this gateway. The rest of ``conf`` goes to each SparkContext, not to the JVM's system
    properties, where a later context in the same JVM would inherit settings it was not asked for."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    spark_conf = SparkConf(loadDefaults=False)
    spark_conf.setAll([(key, value) for key, value in conf.items() if is_jvm_key(key)])
    try:
        gateway = launch_gateway(spark_conf, popen_kwargs={"stdout": output.write_end, "stderr": output.write_end})
    finally:
        os.close(output.write_end)  # the JVM has its own copy: the pipe ends when the JVM does
    SparkContext._gateway = gateway
    SparkContext._jvm = gateway.jvm


def stop_session(engine: SparkEngine) -> None:
    """Stop the session, its gateway JVM (and with it the Python workers), and remove its scratch dir."""
    try:
        # Jobs cancelled by an interrupt are still winding down in the JVM: their errors are noise now.
        engine.session.sparkContext.setLogLevel("OFF")
        engine.session.stop()
    except Exception:  # already stopped, or the JVM is gone: the gateway shutdown below still applies
        log.debug("SparkSession.stop() failed", exc_info=True)
    finally:
        shutdown_gateway(engine.gateway_proc)
        shutil.rmtree(engine.scratch, ignore_errors=True)


def shutdown_gateway(proc: subprocess.Popen[bytes] | None = None) -> None:
    """End pyspark's gateway JVM and forget it, so that the next session launches a fresh JVM."""
    if "pyspark" not in sys.modules:
        return
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    gateway = SparkContext._gateway
    if proc is None and gateway is not None:
        proc = getattr(gateway, "proc", None)
    if gateway is not None:
        try:
            gateway.shutdown()
        except Exception:
            log.debug("py4j gateway shutdown failed", exc_info=True)
    if proc is not None and proc.poll() is None:
        # The gateway JVM exits when its stdin closes; kill it if it does not within a few seconds.
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=10)
        except Exception:
            proc.kill()
            proc.wait(timeout=10)
    SparkContext._gateway = None
    SparkContext._jvm = None
    SparkContext._active_spark_context = None
    SparkSession._instantiatedSession = None
    SparkSession._activeSession = None
