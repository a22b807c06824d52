"""The Jobs API double itself: every answer read back with the official databricks-sdk classes (``Run.from_dict``
and friends), the documented life cycle and result states, idempotency, authentication, errors and faults, and
spark_python_tasks really run (and killed) by spark-submit."""

from __future__ import annotations

import time

import aiohttp
import anyio
import pytest
from _databricks_testkit import TOKEN
from databricks.sdk.service.jobs import Run, RunOutput, SubmitRunResponse
from jobs_double import DEFAULT_CLUSTER

pytestmark = [pytest.mark.databricks]

CLUSTER = {"spark_version": "14.3.x-scala2.12", "node_type_id": "i3.xlarge", "num_workers": 1,
           "spark_env_vars": {"GREETING": "hello"}}


def same_shape(cls, body):
    assert cls.from_dict(body).as_dict() == body, f"{cls.__name__} does not read this back as it is: {body}"


async def call(double, method, endpoint, body=None, run_id=None, token=TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    params = {"run_id": str(run_id)} if run_id is not None else None
    async with aiohttp.ClientSession() as session, session.request(
            method, f"{double.url}/api/2.1/jobs/{endpoint}", json=body, params=params, headers=headers) as response:
        return response.status, await response.json(), response.headers


def submit_body(python_file, parameters=(), **extra):
    task = {"task_key": "main", "new_cluster": CLUSTER,
            "spark_python_task": {"python_file": python_file, "parameters": list(parameters)}}
    return {"run_name": "double-test", "tasks": [task], **extra}


async def follow(double, run_id, until=("TERMINATED", "SKIPPED", "INTERNAL_ERROR"), timeout=120):
    """Poll runs/get, checking every answer's shape; the life-cycle states seen and the last answer."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body, _ = await call(double, "GET", "runs/get", run_id=run_id)
        assert status == 200, body
        same_shape(Run, body)
        state = body["state"]["life_cycle_state"]
        if not seen or seen[-1] != state:
            seen.append(state)
        if state in until:
            return seen, body
        await anyio.sleep(0.05)
    raise AssertionError(f"run {run_id} still {seen[-1]} after {timeout}s")


@pytest.fixture
def script(tmp_path):
    def write(text, name="main.py"):
        path = tmp_path / name
        path.write_text(text)
        return f"file://{path}"
    return write


@pytest.mark.spark
@pytest.mark.slow
async def test_a_run_goes_through_the_documented_life_cycle_and_really_runs(jobs_double, workspace, script):
    python_file = script("import os, sys\n"
                         "print('args', sys.argv[1:], os.environ['GREETING'], os.environ['DATABRICKS_RUNTIME_VERSION'])"
                         "\n")
    status, body, _ = await call(jobs_double, "POST", "runs/submit", submit_body(python_file, ["--n", "3"]))
    assert status == 200
    same_shape(SubmitRunResponse, body)
    seen, run = await follow(jobs_double, body["run_id"])
    # Polling may miss a short state; the double's own record has every step.
    assert jobs_double.run(body["run_id"]).history == ["QUEUED", "PENDING", "RUNNING", "TERMINATING",
                                                       "TERMINATED/SUCCESS"]
    assert seen[-1] == "TERMINATED" and set(seen) <= {"QUEUED", "PENDING", "RUNNING", "TERMINATING", "TERMINATED"}
    assert run["state"]["result_state"] == "SUCCESS" and run["status"]["termination_details"]["code"] == "SUCCESS"
    assert run["run_type"] == "SUBMIT_RUN" and f"#job/{run['job_id']}/run/{run['run_id']}" in run["run_page_url"]
    (task,) = run["tasks"]
    assert task["spark_python_task"]["python_file"] == python_file and task["cluster_instance"]["cluster_id"]
    assert run["end_time"] >= run["start_time"] > 0 and run["execution_duration"] > 0

    status, task_run, _ = await call(jobs_double, "GET", "runs/get", run_id=task["run_id"])
    assert status == 200 and task_run["run_id"] == task["run_id"]
    same_shape(Run, task_run)
    status, output, _ = await call(jobs_double, "GET", "runs/get-output", run_id=task["run_id"])
    assert status == 200
    same_shape(RunOutput, output)
    assert "args ['--n', '3'] hello 14.3" in output["logs"] and output["logs_truncated"] is False
    status, error, _ = await call(jobs_double, "GET", "runs/get-output", run_id=run["run_id"])
    assert status == 400 and "multiple tasks" in error["message"]


@pytest.mark.spark
@pytest.mark.slow
async def test_failure_gives_error_and_trace_and_timeout_kills_the_driver(jobs_double, workspace, script):
    failing = script("def check(n):\n    raise ValueError(f'bad input {n}')\n\ncheck(7)\n", "fail.py")
    sleeping = script("import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n", "sleep.py")
    status, first, _ = await call(jobs_double, "POST", "runs/submit", submit_body(failing))
    assert status == 200, first
    _, second, _ = await call(jobs_double, "POST", "runs/submit", submit_body(sleeping, timeout_seconds=4))
    _, failed = await follow(jobs_double, first["run_id"])
    assert failed["state"]["result_state"] == "FAILED"
    assert failed["status"]["termination_details"]["type"] == "CLIENT_ERROR"
    _, output, _ = await call(jobs_double, "GET", "runs/get-output", run_id=failed["tasks"][0]["run_id"])
    same_shape(RunOutput, output)
    assert output["error"] == "ValueError: bad input 7"
    assert output["error_trace"].startswith("Traceback (most recent call last):") and "in check" in \
        output["error_trace"]

    _, timed_out = await follow(jobs_double, second["run_id"])
    assert timed_out["state"]["result_state"] == "TIMEDOUT" and timed_out["state"]["user_cancelled_or_timedout"]
    assert jobs_double.run(second["run_id"]).history[-2:] == ["TERMINATING", "TERMINATED/TIMEDOUT"]
    assert jobs_double.run(second["run_id"]).pid not in jobs_double.live_processes()


async def test_cancel_before_the_cluster_is_up_and_of_an_ended_run(jobs_double, workspace, script):
    python_file = script("print('never')\n")
    _, body, _ = await call(jobs_double, "POST", "runs/submit", submit_body(python_file))
    status, answer, _ = await call(jobs_double, "POST", "runs/cancel", {"run_id": body["run_id"]})
    assert status == 200 and answer == {}
    _, run = await follow(jobs_double, body["run_id"])
    assert run["state"]["result_state"] == "CANCELED" and run["state"]["user_cancelled_or_timedout"] is True
    assert "RUNNING" not in jobs_double.run(body["run_id"]).history and jobs_double.run(body["run_id"]).pid is None
    status, answer, _ = await call(jobs_double, "POST", "runs/cancel", {"run_id": body["run_id"]})
    assert status == 200 and answer == {}
    assert jobs_double.run(body["run_id"]).history[-1] == "TERMINATED/CANCELED"


async def test_idempotency_token_names_one_run(jobs_double, workspace, script):
    python_file = script("print('once')\n")
    token = "flyte-idem-" + "7" * 20
    _, first, _ = await call(jobs_double, "POST", "runs/submit", submit_body(python_file, idempotency_token=token))
    _, again, _ = await call(jobs_double, "POST", "runs/submit", submit_body(python_file, idempotency_token=token))
    assert first == again
    status, error, _ = await call(jobs_double, "POST", "runs/submit",
                                  submit_body(python_file, idempotency_token="x" * 65))
    assert status == 400 and "64" in error["message"]
    await call(jobs_double, "POST", "runs/cancel", {"run_id": first["run_id"]})
    await follow(jobs_double, first["run_id"])


async def test_errors_are_the_documented_ones(jobs_double, workspace, script):
    python_file = script("print('x')\n")
    status, body, _ = await call(jobs_double, "GET", "runs/get", run_id=1, token=None)
    assert status == 401 and body["error_code"] == "UNAUTHENTICATED"
    status, body, _ = await call(jobs_double, "GET", "runs/get", run_id=1, token="dapi-wrong")
    assert (status, body) == (403, {"error_code": "PERMISSION_DENIED", "message": "Invalid access token."})
    status, body, _ = await call(jobs_double, "GET", "runs/get", run_id=999999)
    assert status == 400 and body == {"error_code": "INVALID_PARAMETER_VALUE", "message": "Run 999999 does not exist."}
    unknown_field = submit_body(python_file)
    unknown_field["tasks"][0]["bogus_field"] = 1
    no_version = submit_body(python_file)
    no_version["tasks"][0]["new_cluster"] = {"num_workers": 1}
    unknown_cluster = submit_body(python_file)
    unknown_cluster["tasks"][0].pop("new_cluster")
    unknown_cluster["tasks"][0]["existing_cluster_id"] = "0000-nope"
    cases = [(unknown_field, "bogus_field"), ({"run_name": "legacy shape", "new_cluster": CLUSTER}, "new_cluster"),
             (no_version, "spark_version"), (unknown_cluster, "does not exist")]
    for request, fragment in cases:
        status, body, _ = await call(jobs_double, "POST", "runs/submit", request)
        assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE" and fragment in body["message"], body
    existing = submit_body(python_file)
    existing["tasks"][0].pop("new_cluster")
    existing["tasks"][0]["existing_cluster_id"] = DEFAULT_CLUSTER
    status, body, _ = await call(jobs_double, "POST", "runs/submit", existing)
    assert status == 200
    await call(jobs_double, "POST", "runs/cancel", {"run_id": body["run_id"]})
    await follow(jobs_double, body["run_id"])


async def test_faults_throttle_fail_lose_answers_and_doom_runs(jobs_double, workspace, script):
    python_file = script("print('x')\n")
    jobs_double.fail("runs/get", 429, times=1, retry_after=2)
    status, body, headers = await call(jobs_double, "GET", "runs/get", run_id=1)
    assert status == 429 and headers["Retry-After"] == "2" and body["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    jobs_double.fail("runs/get", 503)
    status, body, _ = await call(jobs_double, "GET", "runs/get", run_id=1)
    assert status == 503 and body["error_code"] == "TEMPORARILY_UNAVAILABLE"

    before = len(jobs_double.runs)
    jobs_double.fail("runs/submit", 500, after_apply=True)
    token = "flyte-lost-answer-1"
    status, _, _ = await call(jobs_double, "POST", "runs/submit", submit_body(python_file, idempotency_token=token))
    assert status == 500 and len(jobs_double.runs) == before + 1, "the run was started though the answer was lost"
    status, body, _ = await call(jobs_double, "POST", "runs/submit", submit_body(python_file, idempotency_token=token))
    assert status == 200 and len(jobs_double.runs) == before + 1
    await call(jobs_double, "POST", "runs/cancel", {"run_id": body["run_id"]})
    await follow(jobs_double, body["run_id"])

    for life_cycle in ("INTERNAL_ERROR", "SKIPPED"):
        jobs_double.doom_next_run(life_cycle, f"{life_cycle} on purpose")
        _, body, _ = await call(jobs_double, "POST", "runs/submit", submit_body(python_file))
        seen, run = await follow(jobs_double, body["run_id"])
        assert run["state"] == {"life_cycle_state": life_cycle, "state_message": f"{life_cycle} on purpose",
                                "user_cancelled_or_timedout": False}
        assert run["status"]["state"] == "TERMINATED" and "RUNNING" not in seen


async def test_files_api_over_volumes(jobs_double, workspace):
    from databricks.sdk.service.files import ListDirectoryResponse

    base = f"{jobs_double.url}/api/2.0/fs"
    folder = f"/Volumes/main/flyte/data/{workspace}/files-test"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.put(f"{base}/files{folder}/a.bin", data=b"x") as response:
            assert response.status == 404, "the parent directory must exist"
        async with session.put(f"{base}/directories{folder}/sub") as response:
            assert response.status == 204
        async with session.put(f"{base}/directories{folder}/sub") as response:
            assert response.status == 204, "mkdir -p is idempotent"
        async with session.put(f"{base}/files{folder}/a.bin", data=b"\x00bytes\xff",
                               headers={"Content-Type": "application/octet-stream"}) as response:
            assert response.status == 204
        async with session.put(f"{base}/files{folder}/a.bin?overwrite=false", data=b"y") as response:
            assert response.status == 409 and (await response.json())["error_code"] == "ALREADY_EXISTS"
        async with session.head(f"{base}/files{folder}/a.bin") as response:
            assert response.status == 200 and response.headers["Content-Length"] == "7"
        async with session.get(f"{base}/files{folder}/a.bin") as response:
            assert response.status == 200 and await response.read() == b"\x00bytes\xff"
        async with session.get(f"{base}/directories{folder}", params={"page_size": "1"}) as response:
            page = await response.json()
        same_shape(ListDirectoryResponse, page)
        assert [entry["name"] for entry in page["contents"]] == ["a.bin"] and page["next_page_token"]
        async with session.get(f"{base}/directories{folder}", params={"page_token": page["next_page_token"]}) as \
                response:
            rest = await response.json()
        assert rest == {"contents": [{"path": f"{folder}/sub", "is_directory": True, "name": "sub",
                                      "last_modified": rest["contents"][0]["last_modified"]}]}
        async with session.delete(f"{base}/directories{folder}") as response:
            assert response.status == 409 and (await response.json())["error_code"] == "DIRECTORY_NOT_EMPTY"
        for kind, path in (("files", "a.bin"), ("directories", "sub"), ("directories", "")):
            async with session.delete(f"{base}/{kind}{folder}/{path}".rstrip("/")) as response:
                assert response.status == 204
        async with session.get(f"{base}/files{folder}/a.bin") as response:
            assert response.status == 404 and (await response.json())["error_code"] == "NOT_FOUND"
        async with session.put(f"{base}/directories/Volumes/main/nope/vol/x") as response:
            assert response.status == 404
        async with session.put(f"{base}/directories/tmp/x") as response:
            assert response.status == 400
