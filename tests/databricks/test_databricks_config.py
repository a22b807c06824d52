"""DatabricksV2's validation, the runs/submit request it builds (checked against the documented shape with the SDK's
classes), where the workspace, token and storage come from, and what importing it costs."""

from __future__ import annotations

import subprocess
import sys
import warnings

import msgspec
import pytest
from jobs_double.shapes import check_submit

import flyte
from flyteplugins.spark._databricks_client import resolve_instance, resolve_token
from flyteplugins.spark._databricks_config import submit_request
from flyteplugins.spark._databricks_store import resolve_storage
from flyteplugins.spark.task import Databricks, DatabricksFunctionTask, DatabricksV2

pytestmark = [pytest.mark.databricks]

CLUSTER = {"spark_version": "15.4.x-scala2.12", "node_type_id": "m5.xlarge", "num_workers": 2}


def build(config: DatabricksV2, **changes):
    values = {"run_name": "r", "idempotency_token": "flyte-0123", "python_file": "s3://b/entry/flyte-runtime.py",
              "parameters": ["--task", "s3://b/t.pkl"], "env_vars": {}}
    values.update(changes)
    return submit_request(config, **values)


@pytest.mark.parametrize("conf, fragment", [
    ({"libraries": []}, "no compute for the run"),
    ({"new_cluster": CLUSTER, "existing_cluster_id": "c1"}, "both 'new_cluster' and 'existing_cluster_id'"),
    ({"new_cluster": "big"}, "expected a cluster spec"),
    ({"existing_cluster_id": ""}, "existing_cluster_id"),
    ({"new_cluster": CLUSTER, "idempotency_token": "x"}, "set by the plugin, one per attempt"),
    ({"new_cluster": CLUSTER, "timeout_seconds": -1}, "timeout_seconds"),
    ({"new_cluster": CLUSTER, "libraries": "flyte"}, "libraries"),
    ({"new_cluster": CLUSTER, "spark_python_task": {"parameters": []}}, "'python_file'"),
    ({"new_cluster": CLUSTER, "tasks": [{}, {}]}, "one run submits one task"),
    ({"new_cluster": CLUSTER, "tasks": [{"new_cluster": CLUSTER}]}, "both at the top level and in tasks[0]"),
    ({"new_cluster": {"spark_conf": {"a": object()}}}, "not JSON"),
])
def test_conf_errors_name_the_field(conf, fragment):
    with pytest.raises((TypeError, ValueError)) as info:
        DatabricksV2(databricks_conf=conf)
    assert fragment in str(info.value)
    assert "databricks_conf" in str(info.value)


def test_other_fields_are_checked_where_written():
    with pytest.raises(ValueError, match="databricks_instance"):
        DatabricksV2({"new_cluster": CLUSTER}, "not a host/with/path")
    with pytest.raises(ValueError, match="storage"):
        DatabricksV2({"new_cluster": CLUSTER}, storage="/tmp/somewhere")
    with pytest.raises(ValueError, match="new_cluster"):
        DatabricksV2({"existing_cluster_id": "c1"}, spark_conf={"spark.executor.memory": "1g"})
    with pytest.raises(TypeError, match="expected a string value"):
        DatabricksV2({"new_cluster": CLUSTER}, spark_conf={"spark.executor.cores": 2})
    with pytest.raises(ValueError, match="applications_path"):
        DatabricksV2({"new_cluster": CLUSTER}, applications_path="dbfs:/app.jar")
    with pytest.raises(TypeError, match="did you mean 'databricks_instance'"):
        DatabricksV2({"new_cluster": CLUSTER}, databrick_instance="h")


def test_a_token_given_as_the_secret_name_is_refused_without_echo():
    token = "dapi" + "ab" * 16
    with pytest.raises(ValueError) as info:
        DatabricksV2({"new_cluster": CLUSTER}, databricks_token=token)
    assert token not in str(info.value) and "looks like an access token" in str(info.value)
    named = DatabricksV2({"new_cluster": CLUSTER}, databricks_token="databricks-token")
    assert named.databricks_token == flyte.Secret(key="databricks-token")


def test_positional_order_and_deprecated_class():
    config = DatabricksV2({"existing_cluster_id": "c1"}, "ws.cloud.databricks.com")
    assert config.databricks_instance == "ws.cloud.databricks.com"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = Databricks(databricks_conf={"existing_cluster_id": "c1"}, databricks_instance="ws")
    assert [w.category for w in caught] == [DeprecationWarning] and caught[0].filename == __file__
    assert isinstance(old, DatabricksV2)
    env = flyte.TaskEnvironment(name="dbx_old", plugin_config=old)

    @env.task
    def f() -> int:
        return 1

    assert isinstance(f, DatabricksFunctionTask) and f.task_type == "databricks"


def test_flytekit_single_task_conf_becomes_the_documented_21_request():
    config = DatabricksV2({"run_name": "nightly", "timeout_seconds": 3600, "new_cluster": dict(CLUSTER),
                           "libraries": [{"pypi": {"package": "flyte-distributed[databricks]"}}], "max_retries": 0},
                          spark_conf={"spark.sql.shuffle.partitions": "8"}, hadoop_conf={"fs.s3a.fast.upload": "true"})
    request = build(config, env_vars={"STAGE": "test"})
    assert check_submit(request) is None
    assert request["run_name"] == "nightly" and request["timeout_seconds"] == 3600
    assert request["idempotency_token"] == "flyte-0123"
    (task,) = request["tasks"]
    assert task["task_key"] == "flyte_task" and task["max_retries"] == 0
    assert task["spark_python_task"] == {"python_file": "s3://b/entry/flyte-runtime.py",
                                         "parameters": ["--task", "s3://b/t.pkl"]}
    assert task["new_cluster"]["spark_conf"] == {"spark.sql.shuffle.partitions": "8",
                                                 "spark.hadoop.fs.s3a.fast.upload": "true"}
    assert task["new_cluster"]["spark_env_vars"] == {"STAGE": "test"}
    assert config.databricks_conf["new_cluster"] == CLUSTER, "the config is not changed by building a request"


def test_tasks_form_existing_cluster_and_the_users_own_program():
    config = DatabricksV2({"tasks": [{"task_key": "mine", "existing_cluster_id": "c1",
                                      "libraries": [{"whl": "dbfs:/w.whl"}]}]})
    request = build(config)
    assert check_submit(request) is None
    assert request["tasks"][0]["task_key"] == "mine" and request["tasks"][0]["existing_cluster_id"] == "c1"
    assert request["run_name"] == "r"
    own = {"python_file": "dbfs:/path/to/your_script.py", "parameters": ["--input", "dbfs:/input"]}
    config = DatabricksV2({"new_cluster": CLUSTER, "spark_python_task": own})
    assert config.runs_user_program
    request = build(config, python_file=None, parameters=[])
    assert check_submit(request) is None
    assert request["tasks"][0]["spark_python_task"] == own, "the user's own program is submitted as it is"


def test_instance_token_and_storage_resolution(monkeypatch, tmp_path):
    config = DatabricksV2({"new_cluster": CLUSTER})
    for name in ("FLYTE_DATABRICKS_INSTANCE", "DATABRICKS_TOKEN", "FLYTE_DATABRICKS_ACCESS_TOKEN",
                 "FLYTE_DATABRICKS_STORAGE", "DBX_SECRET"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="FLYTE_DATABRICKS_INSTANCE"):
        resolve_instance(config)
    monkeypatch.setenv("FLYTE_DATABRICKS_INSTANCE", "env-ws.cloud.databricks.com")
    assert resolve_instance(config) == "env-ws.cloud.databricks.com"
    assert resolve_instance(msgspec.structs.replace(config, databricks_instance="arg-ws")) == "arg-ws"

    with pytest.raises(ValueError, match="DATABRICKS_TOKEN"):
        resolve_token(config)
    monkeypatch.setenv("DATABRICKS_TOKEN", "from-env")
    assert resolve_token(config) == "from-env"
    secret = DatabricksV2({"new_cluster": CLUSTER}, databricks_token=flyte.Secret(key="tok", as_env_var="DBX_SECRET"))
    with pytest.raises(ValueError, match="DBX_SECRET") as info:
        resolve_token(secret)
    assert "from-env" not in str(info.value)
    monkeypatch.setenv("DBX_SECRET", "from-secret")
    assert resolve_token(secret) == "from-secret"

    run = type("Run", (), {"raw_data_path": str(tmp_path)})()
    with pytest.raises(ValueError, match="no storage the Databricks cluster can read"):
        resolve_storage(config, run)
    run.raw_data_path = "s3://raw/data"
    assert resolve_storage(config, run) == "s3://raw/data"
    monkeypatch.setenv("FLYTE_DATABRICKS_STORAGE", "gs://env/prefix/")
    assert resolve_storage(config, run) == "gs://env/prefix"
    assert resolve_storage(msgspec.structs.replace(config, storage="s3://arg/p"), run) == "s3://arg/p"


def test_custom_config_never_carries_the_token(monkeypatch):
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-secret-value")
    env = flyte.TaskEnvironment(name="dbx_custom", plugin_config=DatabricksV2(
        {"new_cluster": CLUSTER}, "ws", databricks_token=flyte.Secret(key="databricks-token")))

    @env.task
    def f() -> int:
        return 1

    custom = f.custom_config()
    assert custom["databricksConf"] == {"new_cluster": CLUSTER} and custom["databricksInstance"] == "ws"
    assert "dapi-secret-value" not in repr(custom)


def test_importing_the_config_imports_no_engine():
    code = ("import sys; from flyteplugins.spark.task import DatabricksV2; "
            "print(sorted(m for m in ('aiohttp', 'pyspark', 'obstore', 'kubernetes_asyncio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_in_a_kubernetes_run_the_call_is_a_job_whose_pod_gets_the_token_by_reference(monkeypatch):
    """A remote (Kubernetes) run of a DatabricksV2 task: a pod submits the run; the token reaches it as a Secret
    reference, never as a value in the manifest."""
    import yaml

    from flyte.kubernetes import dry_run

    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-value-in-the-callers-env")
    env = flyte.TaskEnvironment(name="dbx_k8s", secrets=[flyte.Secret(key="databricks-token",
                                                                      as_env_var="DATABRICKS_TOKEN")],
                                plugin_config=DatabricksV2({"new_cluster": CLUSTER}, "ws.cloud.databricks.com"))

    @env.task
    def f(n: int) -> int:
        return n

    [manifest] = dry_run(f, 1, run_name="dbx-dry")
    assert manifest["kind"] == "Job"
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    token_env = [e for e in container["env"] if e["name"] == "DATABRICKS_TOKEN"]
    assert token_env == [{"name": "DATABRICKS_TOKEN", "valueFrom": {"secretKeyRef": {
        "name": token_env[0]["valueFrom"]["secretKeyRef"]["name"], "key": "databricks-token"}}}]
    assert "dapi-value-in-the-callers-env" not in yaml.safe_dump(manifest)
