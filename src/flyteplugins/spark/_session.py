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

import logging
import os
import shutil
import subprocess
import sys
import tempfile
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


def abort_start(scratch: str) -> None:
    """Make a session start that is under way fail now: kill the JVM being launched for ``scratch`` (pyspark then
    raises, and :func:`start_session` cleans up)."""
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
    java_executable()  # fail with a clear message before pyspark waits for a gateway that never comes
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

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

    try:
        for sub in ("warehouse", "tmp", "derby"):
            os.makedirs(os.path.join(scratch, sub), exist_ok=True)
        builder = SparkSession.builder
        for key, value in session_conf(spec, app_name, scratch).items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
    except BaseException:
        shutdown_gateway()
        raise
    gateway = SparkContext._gateway
    return SparkEngine(session=session, spec=spec, scratch=scratch,
                       gateway_proc=getattr(gateway, "proc", None), ui_url=session.sparkContext.uiWebUrl)


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
