"""The Jobs API client against the double: throttling and outages retried (Retry-After honoured), lost answers
absorbed by idempotency, final failures named with status and error code, never with the token."""

from __future__ import annotations

import logging
import socket
import time

import pytest
from _databricks_testkit import TOKEN

from flyteplugins.spark._databricks_client import DatabricksClient, RetryPolicy, _retry_after, base_url
from flyteplugins.spark.task import DatabricksApiError

pytestmark = [pytest.mark.databricks]

FAST = RetryPolicy(attempts=4, total_s=30, base_delay_s=0.05, max_delay_s=5)


async def test_throttling_and_outages_are_retried(jobs_double, workspace, caplog):
    caplog.set_level(logging.INFO, logger="flyteplugins.spark.databricks")
    jobs_double.fail("runs/get", 429, times=1, retry_after=1)
    jobs_double.fail("runs/get", 502, times=1)
    jobs_double.fail("runs/get", 503, times=1)
    gets = len(jobs_double.calls("runs/get"))
    started = time.monotonic()
    async with DatabricksClient(jobs_double.url, TOKEN, FAST) as client:
        with pytest.raises(DatabricksApiError) as info:
            await client.get_run(424242)  # answered at last: this run does not exist
    assert time.monotonic() - started >= 0.9, "Retry-After: 1 was honoured"
    assert len(jobs_double.calls("runs/get")) - gets == 4
    assert (info.value.status, info.value.error_code, info.value.kind) == (400, "INVALID_PARAMETER_VALUE", "user")
    assert "Run 424242 does not exist." in str(info.value)
    assert caplog.text.count("trying again") == 3 and "REQUEST_LIMIT_EXCEEDED" in caplog.text


async def test_an_outage_that_lasts_fails_as_a_system_error(jobs_double, workspace):
    jobs_double.fail("runs/get", 503, times=4)
    async with DatabricksClient(jobs_double.url, TOKEN, FAST) as client:
        with pytest.raises(DatabricksApiError) as info:
            await client.get_run(1)
    assert info.value.status == 503 and info.value.kind == "system"
    assert "failed 4 time(s)" in str(info.value) and "TEMPORARILY_UNAVAILABLE" in str(info.value)


async def test_bad_credentials_fail_at_once_without_the_token(jobs_double, workspace):
    wrong = "dapi" + "5" * 32
    async with DatabricksClient(jobs_double.url, wrong, FAST) as client:
        assert wrong not in repr(client)
        with pytest.raises(DatabricksApiError) as info:
            await client.cancel(1)
    assert info.value.status == 403 and info.value.error_code == "PERMISSION_DENIED"
    assert wrong not in str(info.value) and TOKEN not in str(info.value)


async def test_an_unreachable_workspace_is_retried_then_named():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    policy = RetryPolicy(attempts=3, total_s=10, base_delay_s=0.05, max_delay_s=0.1)
    async with DatabricksClient(f"http://127.0.0.1:{port}", TOKEN, policy) as client:
        with pytest.raises(DatabricksApiError) as info:
            await client.submit({"tasks": []})
    assert info.value.status is None and info.value.kind == "system" and "failed 3 time(s)" in str(info.value)
    assert "ClientConnectorError" in str(info.value)


def test_instance_and_retry_after_forms():
    assert base_url("ws.cloud.databricks.com/") == "https://ws.cloud.databricks.com"
    assert base_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert _retry_after("3") == 3.0 and _retry_after(None) is None and _retry_after("soon") is None
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= _retry_after(later) <= 31


async def test_run_data_on_a_volume_is_written_read_and_removed_with_the_files_api(jobs_double, workspace):
    import types

    from flyteplugins.spark._databricks_client import DatabricksClient as Client
    from flyteplugins.spark._databricks_store import RunStore

    storage = f"/Volumes/main/flyte/data/{workspace}"
    run = types.SimpleNamespace(name="r-volume", scratch={}, closers=[], raw_data_path="/tmp/unused",
                                options=types.SimpleNamespace(keep_raw_data=False))
    store = RunStore.of(storage, run, Client(jobs_double.url, TOKEN, FAST))
    assert RunStore.of(storage, run) is store and run.closers == [store.close]
    for path in ("a1/1/inputs.msgpack", "a1/1/outputs/outputs.msgpack", "tasks/t.pkl", "data/kept.parquet"):
        await store.io.write(f"{store.run_prefix}/{path}", path.encode())
    assert await store.io.read(f"{store.run_prefix}/a1/1/outputs/outputs.msgpack") == b"a1/1/outputs/outputs.msgpack"
    assert await store.io.exists(f"{store.run_prefix}/tasks/t.pkl")
    with pytest.raises(FileNotFoundError):
        await store.io.read(f"{store.run_prefix}/missing")
    await store.close()  # the run's end
    local = f"{jobs_double.root}{store.run_prefix}"
    import os

    assert sorted(os.listdir(local)) == ["data"] and os.listdir(f"{local}/data") == ["kept.parquet"]
    assert store.io.client._session is None, "the Files API client was closed with the run"
