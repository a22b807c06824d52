"""Spark tasks on Databricks: ``plugin_config=DatabricksV2(...)`` makes each call one Jobs API run.

```python
from flyteplugins.spark.task import DatabricksV2
import flyte

env = flyte.TaskEnvironment(name="dbx", plugin_config=DatabricksV2(
    databricks_conf={"new_cluster": {"spark_version": "15.4.x-scala2.12", "node_type_id": "m5.xlarge",
                                     "num_workers": 2},
                     "libraries": [{"pypi": {"package": "flyte-distributed[databricks]"}}], "timeout_seconds": 3600},
    databricks_instance="my-workspace.cloud.databricks.com", storage="s3://my-bucket/flyte"))

@env.task
def count(n: int) -> int:
    return flyte.ctx().data["spark_session"].range(n).count()
```

Here (the caller) a call puts its inputs, the pickled task and the code bundle on ``storage`` and submits a
``spark_python_task`` whose file is the SDK's runtime entry point (``flyte-runtime.py``) with those URIs as
parameters; it follows the run (runs/get, its page shown in progress), and reads the outputs, or the error document
(the task's own exception, with the cluster's traceback), back from the store. Timeouts, cancellation and Ctrl-C
cancel the run on Databricks. On the cluster (``DATABRICKS_RUNTIME_VERSION`` is set there), the same task runs its
function with the cluster's SparkSession. A conf with its own program (``spark_python_task``...) is submitted as it
is; the function then runs here after the run succeeded, with the run in ``flyte.ctx().data["databricks_run"]``
and its output (runs/get-output's ``logs``) in ``["databricks_logs"]``.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any, ClassVar

import flyte
from flyte.errors import RuntimeSystemError
from flyte.extend import (
    INTERRUPT_GRACE_S,
    AsyncFunctionTaskTemplate,
    TaskPluginRegistry,
    report_link,
    run_in_daemon_thread,
)

from ._databricks_config import DatabricksV2, submit_request
from ._databricks_errors import run_error

log = logging.getLogger("flyteplugins.spark.databricks")

SESSION_KEY = "spark_session"
RUN_KEY = "databricks_run"
LOGS_KEY = "databricks_logs"
RUNTIME_VERSION_ENV = "DATABRICKS_RUNTIME_VERSION"  # set by Databricks in every cluster's driver
LINK_LABEL = "Databricks run"


def on_databricks_cluster() -> bool:
    """Whether this process runs a call on a Databricks cluster: started by ``flyte.runtime`` (a remote call) in a
    Databricks runtime."""
    context = flyte.ctx()
    return bool(context) and context.mode == "remote" and bool(os.environ.get(RUNTIME_VERSION_ENV))


class DatabricksFunctionTask(AsyncFunctionTaskTemplate):
    """A task run on Databricks (see the module docstring). Its function gets the cluster's SparkSession in
    ``flyte.ctx().data["spark_session"]``, as a local Spark task gets its own."""

    task_type: ClassVar[str] = "databricks"
    supports_reuse: ClassVar[bool] = False
    # Here the call only waits on HTTP (async); on the cluster the process is the call's alone.
    blocking_body: ClassVar[bool] = False

    _cluster_copy: Any = None

    async def pre(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if not on_databricks_cluster():
            return {}
        import anyio

        session = await anyio.to_thread.run_sync(_cluster_session)
        return {SESSION_KEY: session}

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        if on_databricks_cluster():
            return await self._run_here(args, kwargs)
        config: DatabricksV2 = self.plugin_config
        if config.runs_user_program:
            await self._submit_user_program(config)
            return await self._run_here(args, kwargs)
        return await self._submit_function(config, args, kwargs)

    async def _run_here(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The function in this process: on the cluster (with its session), or after the user's own program."""
        from ._errors import detach

        session = flyte.ctx().data.get(SESSION_KEY)
        if session is not None:
            from ._dataframe import rebind

            args = tuple(rebind(value, session) for value in args)
            kwargs = {name: rebind(value, session) for name, value in kwargs.items()}
        try:
            if self.is_async:
                return await self.func(*args, **kwargs)
            return await run_in_daemon_thread(self.func, args, kwargs, name=self.name, grace=INTERRUPT_GRACE_S)
        except Exception as error:
            detach(error)
            raise

    # -- here: one run per call --------------------------------------------------------------------------------
    def _label(self) -> str:
        context = flyte.ctx()
        return f"{self.name} (action {context.action_name})"

    def _run_name(self, config: DatabricksV2) -> str:
        context = flyte.ctx()
        return str(config.databricks_conf.get("run_name") or f"flyte {self.name} {context.run_name}/"
                                                               f"{context.action_name}")

    def _env_vars(self) -> dict[str, str]:
        context = flyte.ctx()
        return {**context.run.options.env_vars, **self.settings.env_vars}

    def _client(self, config: DatabricksV2) -> Any:
        from ._databricks_client import DatabricksClient, resolve_instance, resolve_token

        return DatabricksClient(resolve_instance(config), resolve_token(config))

    async def _follow(self, client: Any, request: dict[str, Any]) -> dict[str, Any]:
        from ._databricks_run import submit_and_wait

        return await submit_and_wait(client, request, label=self._label(),
                                     on_page=lambda url: report_link(LINK_LABEL, url))

    async def _submit_user_program(self, config: DatabricksV2) -> None:
        from ._databricks_run import succeeded

        request = submit_request(config, run_name=self._run_name(config), idempotency_token=_token(),
                                 python_file=None, parameters=[], env_vars=self._env_vars())
        async with self._client(config) as client:
            run = await self._follow(client, request)
            output = await _output_of(client, run)
        if not succeeded(run):
            raise run_error(self.name, run, output)
        data = flyte.ctx().data
        data[RUN_KEY] = run
        data[LOGS_KEY] = (output or {}).get("logs") or ""

    async def _submit_function(self, config: DatabricksV2, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        from ._databricks_run import succeeded
        from ._databricks_store import RunStore, resolve_storage

        context = flyte.ctx()
        store = RunStore.of(resolve_storage(config, context.run), context.run, self._client(config))
        interface = self.interface
        # Inputs offloaded here (files, DataFrames) go where the cluster can read them.
        encoded = interface.encode_inputs(interface.bind(args, kwargs), store.inputs_raw_data_path)
        call = await store.prepare(self._for_cluster(), context.action_name, max(1, context.action.attempts),
                                   encoded, config.applications_path)
        request = submit_request(config, run_name=self._run_name(config), idempotency_token=_token(),
                                 python_file=call.entrypoint,
                                 parameters=call.runtime_args(context.run_name, context.action_name),
                                 env_vars=self._env_vars())
        async with self._client(config) as client:
            run = await self._follow(client, request)
            ok = succeeded(run)
            outcome = await store.outcome(call, wait=ok)
            if ok and isinstance(outcome, bytes):
                return interface.decode_output(outcome, call.raw_data_path)
            if ok:
                raise RuntimeSystemError("OutputsMissing", f"{self._label()}: Databricks run {run.get('run_id')} "
                                                           f"succeeded but left no outputs under {call.outputs}")
            if isinstance(outcome, BaseException) and (run.get("state") or {}).get("result_state") == "FAILED":
                # The function raised on the cluster: its own exception, with the cluster's traceback.
                if run.get("run_page_url"):
                    outcome.add_note(f"Databricks run {run.get('run_id')}: {run['run_page_url']}")
                raise outcome
            raise run_error(self.name, run, await _output_of(client, run))

    def _for_cluster(self) -> Any:
        """What the cluster runs: this task without retries or cache (both are this side's, per attempt)."""
        if self._cluster_copy is None:
            self._cluster_copy = self.override(retries=0, cache="disable")
        return self._cluster_copy

    def custom_config(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """flytekit's Databricks task settings (never the token)."""
        config: DatabricksV2 = self.plugin_config
        custom: dict[str, Any] = {"databricksConf": dict(config.databricks_conf), "sparkConf": dict(config.spark_conf),
                                  "hadoopConf": dict(config.hadoop_conf)}
        if config.databricks_instance:
            custom["databricksInstance"] = config.databricks_instance
        if config.applications_path:
            custom["mainApplicationFile"] = config.applications_path
        return custom


def _token() -> str:
    """An idempotency token per attempt (at most 64 characters): a runs/submit sent again names the same run."""
    return f"flyte-{uuid.uuid4().hex}"


async def _output_of(client: Any, run: dict[str, Any]) -> dict[str, Any] | None:
    from ._databricks_run import task_run_id

    try:
        return await client.get_output(task_run_id(run))  # type: ignore[no-any-return]
    except Exception as exc:  # noqa: BLE001 - the run's own state still tells the story
        log.warning("could not read the output of Databricks run %s: %s", run.get("run_id"), exc)
        return None


def _cluster_session() -> Any:
    """The cluster's SparkSession (Databricks starts it with the driver; this process attaches to it)."""
    from pyspark.sql import SparkSession

    return SparkSession.builder.getOrCreate()


TaskPluginRegistry.register(DatabricksV2, DatabricksFunctionTask)
