"""Spark tasks: ``plugin_config=Spark(...)`` gives the task a SparkSession; ``GenericSparkConf`` runs a JVM app.

```python
from flyteplugins.spark.task import Spark
import flyte

env = flyte.TaskEnvironment(name="spark_env", plugin_config=Spark(spark_conf={"spark.executor.instances": "2"}))

@env.task
async def count(n: int) -> int:
    spark = flyte.ctx().data["spark_session"]
    return spark.range(n).count()
```

Importing this module does not import pyspark; the session starts with the first Spark task of a run, is shared by
the run's later Spark tasks with the same static settings, and is stopped when the run ends.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import anyio

import flyte
from flyte.extend import (
    INTERRUPT_GRACE_S,
    AsyncFunctionTaskTemplate,
    TaskPluginRegistry,
    acquire_engine,
    code_bundle,
    register_type_encoder,
    report_link,
    run_blocking,
    run_in_daemon_thread,
    run_temp_dir,
)

from ._config import GenericSparkConf, Spark
from ._databricks import DatabricksFunctionTask
from ._databricks_config import Databricks, DatabricksV2
from ._databricks_errors import DatabricksApiError, DatabricksRunError, DatabricksRunTimeoutError
from ._dataframe import DATAFRAME_ENCODER, ParquetDataFrame, rebind
from ._errors import detach
from ._runtime import JavaNotFoundError
from ._session import (
    ENGINE_KIND,
    SessionPlan,
    SessionSpec,
    SparkEngine,
    abort_start,
    new_scratch_dir,
    resizable,
    resize_session,
    start_session,
    stop_session,
)
from ._submit import SparkSubmitError, run_spark_submit

__all__ = [
    "Databricks",
    "DatabricksApiError",
    "DatabricksFunctionTask",
    "DatabricksRunError",
    "DatabricksRunTimeoutError",
    "DatabricksV2",
    "GenericSparkConf",
    "GenericSparkTask",
    "JavaNotFoundError",
    "ParquetDataFrame",
    "PysparkFunctionTask",
    "Spark",
    "SparkSubmitError",
]

SESSION_KEY = "spark_session"
_ENGINE_KEY = "_spark_engine"
_TAG_KEY = "_spark_job_tag"
_RESTORE_KEY = "_spark_runtime_conf_restore"


class PysparkFunctionTask(AsyncFunctionTaskTemplate):
    """A task run with a SparkSession: ``flyte.ctx().data["spark_session"]``, which is also what
    ``SparkSession.builder.getOrCreate()`` returns inside the task."""

    task_type: ClassVar[str] = "spark"
    supports_reuse: ClassVar[bool] = False
    blocking_body: ClassVar[bool] = True

    _plan: SessionPlan | None = None

    @property
    def plan(self) -> SessionPlan:
        # Per template: an override builds a new template, so the cached plan always matches plugin_config.
        if self._plan is None:
            self._plan = SessionPlan.of(self.plugin_config)
        return self._plan

    async def pre(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        plan = self.plan
        spec = plan.spec()
        app_name = self.name

        async def start() -> SparkEngine:
            # A timeout or Ctrl-C during the JVM's start kills it (the start then fails at once); a session that
            # still comes up after the caller has gone is stopped.
            scratch = new_scratch_dir()
            return await run_blocking(start_session, spec, app_name, scratch, interrupt=lambda: abort_start(scratch),
                                      discard=stop_session, name="flyte-spark-start")

        async def resize(live: SparkEngine, wanted: SessionSpec) -> SparkEngine:
            # Cancelled half-way, the thread finishes on its own and a context it still made is stopped.
            return await run_blocking(resize_session, live, wanted, app_name, discard=stop_session,
                                      name="flyte-spark-resize")

        # A session user code stopped (spark.stop()) is not alive: the pool starts a fresh one.
        engine: SparkEngine = await acquire_engine(ENGINE_KIND, spec, start, stop_session,
                                                   alive=lambda live: not live.stopped,
                                                   resizable=resizable, resize=resize)
        data: dict[str, Any] = {SESSION_KEY: engine.session, _ENGINE_KEY: engine, _TAG_KEY: _job_tag()}
        if plan.runtime_conf:
            data[_RESTORE_KEY] = _apply_runtime_conf(engine.session, plan.runtime_conf)
        bundle = code_bundle()
        if bundle and bundle.digest not in engine.shipped_bundles:
            # Executors unpickle the user's functions by module name; the bundle makes those modules importable
            # there (a standalone cluster's workers, and local Python workers started outside the driver's path).
            # Marked first so that concurrent calls ship it once.
            engine.shipped_bundles.add(bundle.digest)
            try:
                await anyio.to_thread.run_sync(engine.session.sparkContext.addPyFile, str(bundle.archive))
            except BaseException:
                engine.shipped_bundles.discard(bundle.digest)
                raise
        if engine.ui_url:
            report_link("Spark UI", engine.ui_url)
        return data

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        context = flyte.ctx()
        assert context
        engine: SparkEngine = context.data[_ENGINE_KEY]
        session = context.data[SESSION_KEY]
        args = tuple(rebind(value, session) for value in args)
        kwargs = {name: rebind(value, session) for name, value in kwargs.items()}
        tag = context.data[_TAG_KEY]
        try:
            if self.is_async:
                with _tagged(engine, tag):
                    return await self.func(*args, **kwargs)

            def tagged_body(*args: Any, **kwargs: Any) -> Any:
                with _tagged(engine, tag):
                    return self.func(*args, **kwargs)

            return await run_in_daemon_thread(tagged_body, args, kwargs, name=self.name, grace=INTERRUPT_GRACE_S)
        except Exception as error:
            detach(error)  # in place: still printable after the run has stopped the JVM
            raise

    def interrupt(self, data: dict[str, Any]) -> None:
        """Cancel the Spark jobs of this call (its job tag), so an action blocked in the body raises at once."""
        session = data.get(SESSION_KEY)
        tag = data.get(_TAG_KEY)
        if session is not None and tag is not None:
            try:
                session.sparkContext.cancelJobsWithTag(tag)
            except Exception:  # the session is gone (user stopped it): nothing runs
                pass

    async def release(self, data: dict[str, Any], error: BaseException | None) -> None:
        restore = data.get(_RESTORE_KEY)
        session = data.get(SESSION_KEY)
        if restore and session is not None:
            try:
                _restore_runtime_conf(session, restore)
            except Exception:  # the session may be gone (user stopped it): nothing left to restore
                pass

    def custom_config(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        config: Spark = self.plugin_config
        return {
            "sparkConf": dict(config.spark_conf),
            "hadoopConf": dict(config.hadoop_conf),
            "executorPath": config.executor_path,
            "mainApplicationFile": config.applications_path,
        }


def _job_tag() -> str:
    return f"flyte-{uuid.uuid4().hex}"


@contextlib.contextmanager
def _tagged(engine: SparkEngine, tag: str) -> Iterator[None]:
    """On this thread: the session is the active one (``getOrCreate()`` returns it) and every job carries ``tag``,
    by which :meth:`PysparkFunctionTask.interrupt` cancels them. Spark keeps both per thread."""
    engine.make_active_here()
    context = engine.session.sparkContext
    context.setInterruptOnCancel(True)
    context.addJobTag(tag)
    try:
        yield
    finally:
        try:
            context.removeJobTag(tag)
        except Exception:  # the session was stopped in the body
            pass


def _apply_runtime_conf(session: Any, conf: tuple[tuple[str, str], ...]) -> dict[str, str | None]:
    """Set the call's runtime SQL settings; returns the previous values, restored when the call ends, so a
    setting does not leak into a later call that shares the session."""
    live = session.conf
    previous: dict[str, str | None] = {}
    for key, value in conf:
        before = live.get(key, None)
        if before == value:
            continue
        try:
            live.set(key, value)
        except Exception as exc:
            raise ValueError(f"Spark.spark_conf[{key!r}]: the live session refused {value!r} ({exc}); "
                             "a setting fixed at session start cannot change per call") from None
        previous[key] = before
    return previous


def _restore_runtime_conf(session: Any, previous: dict[str, str | None]) -> None:
    live = session.conf
    for key, value in previous.items():
        if value is None:
            live.unset(key)
        else:
            live.set(key, value)


class GenericSparkTask(AsyncFunctionTaskTemplate):
    """Runs the JVM application of a ``GenericSparkConf`` with ``spark-submit``, then the function's body (which
    may post-process the application's output; it can be ``pass``). A non-zero exit raises
    :class:`SparkSubmitError` with the exit code and the end of the application's stderr.

    On Kubernetes the JVM application is the whole task: a SparkApplication of type Java whose driver runs the jar's
    main class. No Python runs there, so the body does not run and the call returns None once the application
    COMPLETES (FAILED or SUBMISSION_FAILED fail the call with the driver's log); a task declaring an output is
    refused before submission. Write portable tasks as ``-> None`` and let the application write its results."""

    task_type: ClassVar[str] = "spark"
    supports_reuse: ClassVar[bool] = False

    async def pre(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        stdout = await run_spark_submit(self.plugin_config, self.name, run_temp_dir("spark-submit"))
        return {"spark_submit_stdout": stdout}

    def custom_config(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        config: GenericSparkConf = self.plugin_config
        return {
            "mainClass": config.main_class,
            "mainApplicationFile": config.applications_path,
            "sparkConf": dict(config.spark_conf),
            "hadoopConf": dict(config.hadoop_conf),
            "applicationType": "JAVA",
        }


TaskPluginRegistry.register(Spark, PysparkFunctionTask)
TaskPluginRegistry.register(GenericSparkConf, GenericSparkTask)
register_type_encoder(DATAFRAME_ENCODER)
