"""``DatabricksV2``: run a Spark task on Databricks through the Jobs API (runs/submit), and ``Databricks``, its
deprecated predecessor.

A frozen struct that validates where it is written (the field, what was given, what is allowed), and builds the
runs/submit request of one call (:func:`submit_request`). Nothing here imports aiohttp or pyspark, and nothing here
ever holds the access token itself: ``databricks_token`` names the secret it is read from.
"""

from __future__ import annotations

import copy
import json
import re
import warnings
from typing import Any

import msgspec

from flyte import Secret
from flyte.extend import ConfigMeta

from ._config import check_string_map

INSTANCE_ENV = "FLYTE_DATABRICKS_INSTANCE"
STORAGE_ENV = "FLYTE_DATABRICKS_STORAGE"
TOKEN_ENVS = ("DATABRICKS_TOKEN", "FLYTE_DATABRICKS_ACCESS_TOKEN")

TASK_KEY = "flyte_task"

# Keys of a runs/submit request that belong to its one task (the Jobs API 2.0 single-task shape puts them at the
# top level, as flytekit's databricks_conf does); the rest are the run's.
TASK_LEVEL_KEYS = frozenset({
    "task_key", "description", "new_cluster", "existing_cluster_id", "job_cluster_key", "environment_key",
    "libraries", "max_retries", "min_retry_interval_millis", "retry_on_timeout", "run_if", "depends_on",
    "spark_python_task", "notebook_task", "spark_jar_task", "python_wheel_task", "spark_submit_task", "sql_task",
    "dbt_task", "pipeline_task", "run_job_task", "condition_task", "for_each_task", "dashboard_task",
    "clean_rooms_notebook_task", "power_bi_task", "gen_ai_compute_task", "compute", "disable_auto_optimization",
})
# A task with one of these runs the user's own program: it is submitted as it is.
PROGRAM_KEYS = ("spark_python_task", "notebook_task", "spark_jar_task", "python_wheel_task", "spark_submit_task",
                "sql_task", "dbt_task", "pipeline_task", "run_job_task", "condition_task", "for_each_task",
                "dashboard_task", "clean_rooms_notebook_task", "power_bi_task", "gen_ai_compute_task")
_COMPUTE_KEYS = ("new_cluster", "existing_cluster_id", "job_cluster_key", "environment_key", "compute")

_INSTANCE = re.compile(r"^(https?://)?[A-Za-z0-9]([A-Za-z0-9.\-]*[A-Za-z0-9])?(:\d{1,5})?/?$")
_STORAGE_SCHEMES = ("s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "file")
_VOLUME = re.compile(r"^(dbfs:)?/Volumes/[^/]+/[^/]+/[^/]+(/.*)?$")
_TOKEN_LIKE = re.compile(r"^(dapi|dkea|dose)[0-9a-f]{8,}", re.IGNORECASE)


def _check_json(owner: str, value: Any, where: str) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{owner}.{where}: not JSON ({exc}); the Jobs API takes JSON values only") from None


def _task_part(conf: dict[str, Any], owner: str) -> dict[str, Any]:
    """The conf's one task: its ``tasks`` entry merged with the task-level keys given at the top level."""
    tasks = conf.get("tasks")
    task: dict[str, Any] = {}
    if tasks is not None:
        if not isinstance(tasks, list) or len(tasks) != 1 or not isinstance(tasks[0], dict):
            raise ValueError(f"{owner}.databricks_conf['tasks']: one run submits one task; give a list with a single "
                             "task (a dict), or put the task's keys (new_cluster, libraries...) at the top level")
        task = dict(tasks[0])
    for key in TASK_LEVEL_KEYS & conf.keys():
        if key in task:
            raise ValueError(f"{owner}.databricks_conf: {key!r} is given both at the top level and in tasks[0]; "
                             "keep one")
        task[key] = conf[key]
    return task


class DatabricksV2(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """Run the task on Databricks: one Jobs API run (runs/submit) per call.

    - ``databricks_conf``: a runs/submit request (API 2.1, or flytekit's 2.0 single-task shape): ``new_cluster`` or
      ``existing_cluster_id`` (or serverless ``environments``/``environment_key``), ``libraries`` (the cluster needs
      this SDK: ``{"pypi": {"package": "flyte-distributed[databricks]"}}``), ``timeout_seconds``, ``run_name``...
      Without a task of its own (``spark_python_task``...), the task's function runs on the cluster with the
      cluster's SparkSession as ``flyte.ctx().data["spark_session"]``. With one, that program is submitted as it
      is, and the function runs here once it succeeded, with the run in ``flyte.ctx().data["databricks_run"]``.
    - ``databricks_instance``: the workspace, ``<account>.cloud.databricks.com`` (default:
      ``$FLYTE_DATABRICKS_INSTANCE``).
    - ``databricks_token``: the :class:`flyte.Secret` (or a secret's key) holding the access token (default: the
      ``DATABRICKS_TOKEN`` environment variable). Never the token itself: it is not logged, nor put in a manifest.
    - ``storage``: where the call's code bundle, inputs and outputs go, a URI the cluster can read and write
      (``s3://bucket/prefix``, ``gs://``, ``abfs://``; ``file://`` for a folder both sides mount), or a Unity
      Catalog volume path ``/Volumes/<catalog>/<schema>/<volume>/...`` (written here with the Files API). Default:
      ``$FLYTE_DATABRICKS_STORAGE``, else the Kubernetes tier's ``storage`` setting, else the run's
      ``raw_data_path`` when it is on an object store.
    - ``spark_conf``/``hadoop_conf``: added to ``new_cluster.spark_conf`` (Hadoop settings as ``spark.hadoop.*``).
    - ``applications_path``: the entry point file the cluster runs (default: the SDK's ``flyte-runtime.py``,
      copied to ``storage``); e.g. a copy in the workspace (``/Workspace/...``) or on DBFS.
    """

    __positional__ = ("databricks_conf", "databricks_instance")

    databricks_conf: dict[str, Any]
    databricks_instance: str | None = None
    databricks_token: Secret | str | None = None
    storage: str | None = None
    spark_conf: dict[str, str] = msgspec.field(default_factory=dict)
    hadoop_conf: dict[str, str] = msgspec.field(default_factory=dict)
    applications_path: str | None = None

    def __post_init__(self) -> None:
        owner = type(self).__name__
        conf = self.databricks_conf
        if not isinstance(conf, dict) or not all(isinstance(key, str) for key in conf):
            raise TypeError(f"{owner}.databricks_conf: expected a dict (a Jobs API runs/submit request), got "
                            f"{type(conf).__name__}")
        _check_json(owner, conf, "databricks_conf")
        if "idempotency_token" in conf:
            raise ValueError(f"{owner}.databricks_conf['idempotency_token']: set by the plugin, one per attempt (a "
                             "fixed token would make every retry return the first attempt's run); leave it out")
        timeout = conf.get("timeout_seconds")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0):
            raise ValueError(f"{owner}.databricks_conf['timeout_seconds']: expected a whole number of seconds >= 0 "
                             f"(0: no timeout), got {timeout!r}")
        task = _task_part(conf, owner)
        compute = [key for key in _COMPUTE_KEYS if task.get(key) is not None]
        serverless = bool(conf.get("environments")) and not compute
        if not compute and not serverless:
            raise ValueError(f"{owner}.databricks_conf: no compute for the run; give 'new_cluster' (a cluster spec), "
                             "'existing_cluster_id', or serverless 'environments' with an 'environment_key'")
        if "new_cluster" in compute and "existing_cluster_id" in compute:
            raise ValueError(f"{owner}.databricks_conf: both 'new_cluster' and 'existing_cluster_id'; keep one")
        if "new_cluster" in task and not isinstance(task["new_cluster"], dict):
            raise TypeError(f"{owner}.databricks_conf['new_cluster']: expected a cluster spec (a dict), got "
                            f"{type(task['new_cluster']).__name__}")
        cluster_id = task.get("existing_cluster_id")
        if cluster_id is not None and (not isinstance(cluster_id, str) or not cluster_id.strip()):
            raise ValueError(f"{owner}.databricks_conf['existing_cluster_id']: expected a cluster id string, got "
                             f"{cluster_id!r}")
        libraries = task.get("libraries")
        if libraries is not None and (not isinstance(libraries, list)
                                      or not all(isinstance(item, dict) for item in libraries)):
            raise TypeError(f"{owner}.databricks_conf['libraries']: expected a list of library specs such as "
                            "{'pypi': {'package': 'flyte-distributed[databricks]'}}")
        python_task = task.get("spark_python_task")
        if python_task is not None and (not isinstance(python_task, dict)
                                        or not isinstance(python_task.get("python_file"), str)):
            raise ValueError(f"{owner}.databricks_conf['spark_python_task']: expected a dict with 'python_file' (and "
                             "optional 'parameters'); leave it out to run the task's function on the cluster")
        if self.databricks_instance is not None:
            if not isinstance(self.databricks_instance, str) or not _INSTANCE.match(self.databricks_instance.strip()):
                raise ValueError(f"{owner}.databricks_instance: {self.databricks_instance!r} is not a workspace host; "
                                 "expected e.g. 'my-workspace.cloud.databricks.com' (or https://host)")
        token = self.databricks_token
        if isinstance(token, str):
            if _TOKEN_LIKE.match(token) or len(token) > 64:
                # Never echo it: it may be the token itself.
                raise ValueError(f"{owner}.databricks_token: this looks like an access token, not the name of a "
                                 "secret; keep tokens out of code: pass flyte.Secret(key=...) or set DATABRICKS_TOKEN")
            msgspec.structs.force_setattr(self, "databricks_token", Secret(key=token))
        elif token is not None and not isinstance(token, Secret):
            raise TypeError(f"{owner}.databricks_token: expected a flyte.Secret (or a secret's key), got "
                            f"{type(token).__name__}")
        if self.storage is not None:
            storage = self.storage
            scheme = storage.split("://", 1)[0] if isinstance(storage, str) and "://" in storage else ""
            if not isinstance(storage, str) or (scheme not in _STORAGE_SCHEMES and not _VOLUME.match(storage)):
                raise ValueError(f"{owner}.storage: {storage!r}; expected a URI the cluster can read and write, with "
                                 f"one of the schemes {', '.join(s + '://' for s in _STORAGE_SCHEMES)}, or a Unity "
                                 "Catalog volume path /Volumes/<catalog>/<schema>/<volume>/...")
        check_string_map(owner, "spark_conf", self.spark_conf)
        check_string_map(owner, "hadoop_conf", self.hadoop_conf)
        if (self.spark_conf or self.hadoop_conf) and "new_cluster" not in compute:
            raise ValueError(f"{owner}.spark_conf/hadoop_conf: applied to the run's new_cluster, and this conf has "
                             "none (an existing or serverless cluster keeps its own settings); move them into the "
                             "cluster's configuration or use new_cluster")
        if self.applications_path is not None and (not isinstance(self.applications_path, str)
                                                    or not self.applications_path.endswith(".py")):
            raise ValueError(f"{owner}.applications_path: {self.applications_path!r}; expected the path of a .py "
                             "entry point the cluster can read (dbfs:/..., /Workspace/..., s3://...)")

    @property
    def runs_user_program(self) -> bool:
        """Whether the conf names a program of its own (``spark_python_task``...), submitted as it is."""
        task = _task_part(self.databricks_conf, type(self).__name__)
        return any(task.get(key) is not None for key in PROGRAM_KEYS)


class Databricks(DatabricksV2, frozen=True, kw_only=True):  # type: ignore[metaclass]
    """Deprecated: use :class:`DatabricksV2` (same fields). Kept so flytekit programs still run."""

    def __post_init__(self) -> None:
        warnings.warn("flyteplugins.spark.task.Databricks is deprecated; use DatabricksV2 (same fields)",
                      DeprecationWarning, stacklevel=3)
        super().__post_init__()


def submit_request(config: DatabricksV2, *, run_name: str, idempotency_token: str, python_file: str | None,
                   parameters: list[str], env_vars: dict[str, str]) -> dict[str, Any]:
    """The runs/submit request (Jobs API 2.1: one entry in ``tasks``) of one attempt.

    Without a program of the user's, the task is a ``spark_python_task`` running ``python_file`` with
    ``parameters``; ``env_vars`` (the run's and task's variables, never secrets) reach a new cluster's
    ``spark_env_vars``, and ``spark_conf``/``hadoop_conf`` its ``spark_conf`` (the user's cluster values win)."""
    conf = copy.deepcopy(config.databricks_conf)
    task = _task_part(conf, type(config).__name__)
    request = {key: value for key, value in conf.items() if key not in TASK_LEVEL_KEYS and key != "tasks"}
    task.setdefault("task_key", TASK_KEY)
    if not any(task.get(key) is not None for key in PROGRAM_KEYS):
        assert python_file is not None
        task["spark_python_task"] = {"python_file": python_file, "parameters": list(parameters)}
    cluster = task.get("new_cluster")
    if isinstance(cluster, dict):
        spark_conf = {**config.spark_conf, **{f"spark.hadoop.{k}": v for k, v in config.hadoop_conf.items()}}
        if spark_conf:
            cluster["spark_conf"] = {**spark_conf, **(cluster.get("spark_conf") or {})}
        if env_vars:
            cluster["spark_env_vars"] = {**(cluster.get("spark_env_vars") or {}), **env_vars}
    if "environment_key" not in task and conf.get("environments") and "new_cluster" not in task \
            and "existing_cluster_id" not in task:
        task["environment_key"] = conf["environments"][0].get("environment_key", "default")
    request["tasks"] = [task]
    request.setdefault("run_name", run_name)
    request["idempotency_token"] = idempotency_token
    return request
