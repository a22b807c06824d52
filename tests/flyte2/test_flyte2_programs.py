"""Programs written for flyte-sdk 2.x, run unchanged as users run them: ``python prog.py`` in a fresh directory
without a config file (so ``flyte.init_from_config()`` means local mode), ending with flyte-sdk's published tail
(``print(run.url); run.wait()``). Each prints one ``RESULT {json}`` line that the tests check."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROGRAMS = Path(__file__).parent / "programs"


def run_program(name: str, tmp_path: Path, files: dict[str, str] | None = None, env: dict[str, str] | None = None,
                config: str | None = None) -> tuple[dict, str, Path]:
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    shutil.copy(PROGRAMS / name, workdir / name)
    for file_name, text in (files or {}).items():
        (workdir / file_name).write_text(text)
    if config is not None:
        (workdir / "config.yaml").write_text(config)
    runs = tmp_path / "runs"
    full_env = {**os.environ, "FLYTE_RUNS_DIR": str(runs), "HOME": str(tmp_path / "home"),
                "FLYTE_PROGRESS": "plain", **(env or {})}
    for var in ("UCTL_CONFIG", "FLYTECTL_CONFIG"):
        full_env.pop(var, None)
    done = subprocess.run([sys.executable, name], cwd=workdir, env=full_env, capture_output=True, text=True,
                          timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, output[-4000:]
    return json.loads(lines[-1][len("RESULT "):]), output, runs


def test_basics_with_positional_configs_and_the_published_tail(tmp_path):
    result, output, runs = run_program("hello.py", tmp_path)
    assert result["output"] == 9.0 and result["o0"] == 9.0  # flyte-sdk's outputs()[0] / .o0
    assert result["pair"] == [7, "7"]  # -> tuple[int, str]: two outputs
    assert result["url"].startswith("file://") and result["url"] in output  # printed by the program
    page = Path(result["url"][len("file://"):])
    assert page.is_file() and page.parent.parent == runs and "succeeded" in page.read_text()
    assert result["phase"] == "SUCCEEDED" and result["looked_up"] == 9.0  # flyte.remote.Run.get(name)
    assert result["secret_env"] == "API_KEY"
    assert result["version"]


def test_group_trace_report_and_custom_context(tmp_path):
    result, output, runs = run_program("grouping.py", tmp_path)
    outputs = result["outputs"]
    assert outputs["results"] == ["A B", "C D E"]
    assert outputs["n"] == 2
    assert outputs["context"] == {"owner": "me", "stage": "two"}
    assert outputs["run_name"] == result["name"] and outputs["raw"]
    (main,) = result["actions"]
    kinds = {(child["kind"], child["task"]) for child in main["children"]}
    assert ("group", "summaries") in kinds and ("task", "grouping.sync_report") in kinds
    group = next(c for c in main["children"] if c["kind"] == "group")
    summaries = group["children"]
    assert [s["task"] for s in summaries] == ["grouping.summarize"] * 2  # the calls made in the group hang under it
    traces = [t for t in summaries[0]["children"] if t["kind"] == "trace"]
    assert [t["task"] for t in traces] == ["tokenize", "call_llm"]
    assert traces[1]["detail"] == {"inputs": "{'prompt': 'a b'}", "output": "'A B'"}
    report = Path(summaries[0]["report"])
    assert report.is_file() and report.is_relative_to(runs)
    page = report.read_text()
    assert "<p>a b</p>" in page and "tokens: 2" in page and "details" in page  # both tabs
    assert f"report: {report}" in output  # the progress shows where it is
    sync_page = Path(next(c for c in main["children"] if c["task"] == "grouping.sync_report")["report"]).read_text()
    assert "n is still 2" in sync_page and "n is 2<" not in sync_page  # replace() replaced


def test_timeouts_deadlines_and_errors_that_skip_retries(tmp_path):
    result, _, _ = run_program("errors_and_limits.py", tmp_path)
    assert result["give_up"] == "NonRecoverableError|False|False"
    assert result["attempts"]["give_up"] == 1  # not retried
    assert result["slow"] == "DeadlineExceededError|True|True"
    assert 1 < result["attempts"]["slow"] <= 4  # retried until the 1 s deadline, not 6 times
    assert result["too_long"] == "MaxRuntimeExceededError|True|True"


def test_init_from_config_reads_the_file_and_rejects_a_missing_one(tmp_path):
    code = (
        "import flyte, flyte.errors, json\n"
        "flyte.init_from_config()\n"
        "found = [flyte.current_project(), flyte.current_domain()]\n"
        "try:\n"
        "    flyte.init_from_config('nowhere.yaml')\n"
        "    missing = 'no error'\n"
        "except flyte.errors.InitializationError as exc:\n"
        "    missing = exc.code\n"
        "flyte.init()\n"
        "try:\n"
        "    flyte.current_project()\n"
        "except flyte.errors.InitializationError:\n"
        "    found.append('no project after init()')\n"
        "print('RESULT ' + json.dumps({'found': found, 'missing': missing}))\n"
    )
    (tmp_path / "prog.py").write_text(code)
    config = ("admin:\n  endpoint: dns:///flyte.example.com\n  insecure: false\n"
              "task:\n  project: flytesnacks\n  domain: development\nimage:\n  builder: local\n"
              "storage:\n  type: s3\n  unknown_key_we_do_not_use: 1\n")
    workdir = tmp_path / "work"
    workdir.mkdir()
    shutil.move(tmp_path / "prog.py", workdir / "prog.py")
    (workdir / "config.yaml").write_text(config)
    done = subprocess.run([sys.executable, "prog.py"], cwd=workdir, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert result == {"found": ["flytesnacks", "development", "no project after init()"],
                      "missing": "ConfigFileNotFoundError"}


def test_image_uri_is_content_derived_and_never_built(tmp_path):
    files = {"requirements.txt": "numpy==2.1.0\n", "job.py": "print('job')\n"}
    first, _, _ = run_program("image_uri.py", tmp_path, files)
    again, _, _ = run_program("image_uri.py", tmp_path, files)  # another process, same content: same URI
    assert first["uri"] == again["uri"]
    assert first["uri"].startswith("ghcr.io/acme/etl:py3.12-")
    assert first["base_uri"] == "python:3.12-slim"
    changed, _, _ = run_program("image_uri.py", tmp_path, {**files, "requirements.txt": "numpy==2.2.0\n"})
    assert changed["uri"] != first["uri"]  # a copied file's content is part of the tag
    dockerfile = first["dockerfile"].splitlines()
    assert dockerfile[0] == "FROM python:3.12-slim-bookworm"
    assert any(line.startswith("RUN apt-get update") and "git curl" in line for line in dockerfile)
    assert "RUN pip install --no-cache-dir pandas==2.2.3 pyarrow" in dockerfile
    assert "ENV MODE=batch" in dockerfile and "WORKDIR /app" in dockerfile and "COPY job.py /app" in dockerfile


def test_image_cannot_be_made_directly_and_configs_validate():
    import flyte

    with pytest.raises(TypeError, match="from_debian_base"):
        flyte.Image()
    with pytest.raises(ValueError, match="Cache.behavior"):
        flyte.Cache("sometimes")
    assert flyte.Cache("on").behavior == "auto" and flyte.Cache("off").behavior == "disable"
    with pytest.raises(ValueError, match="Secret.mount"):
        flyte.Secret("k", mount="/tmp")
    with pytest.raises(ValueError, match="ReusePolicy.idle_ttl"):
        flyte.ReusePolicy(idle_ttl=5)
    with pytest.raises(ValueError, match="Backoff.cap"):
        flyte.Backoff(1, factor=2)
    assert flyte.Resources("1", "2Gi", "A100:2").get_device() == flyte.Device(2, "GPU", "A100")
    assert flyte.Resources(gpu=flyte.GPU("H100", 4)).requests()["nvidia.com/gpu"] == "4"
    assert flyte.Timeout(60).max_runtime == 60 and flyte.RetryStrategy(3).count == 3
    with pytest.raises(ValueError, match="mode"):
        flyte.with_runcontext("hybrid")


def test_a_plugin_written_as_flyte_sdk_plugins_are(tmp_path):
    result, _, _ = run_program("custom_plugin.py", tmp_path)
    assert result["outputs"] == ["hihi ada", "HEY ada"]
    assert result["events"] == [["pre", "hi"], ["post", "hihi ada"], ["pre", "HEY"], ["post", "HEY ada"]]
    assert result["type"] == "greeter" and result["config"] == {"greeting": "hi", "times": 2}
    assert result["distinct"]


def test_plugin_packages_export_flyte_sdk_names_and_positional_configs():
    from flyteplugins.dask import Dask, Scheduler, WorkerGroup
    from flyteplugins.pytorch import Elastic
    from flyteplugins.ray import AutoscalerOptionsConfig, HeadNodeConfig, RayJobConfig, WorkerNodeConfig
    from flyteplugins.spark import Spark

    assert Spark({"spark.executor.instances": "2"}).spark_conf == {"spark.executor.instances": "2"}
    assert Elastic(1, 4).nproc_per_node == 4
    ray = RayJobConfig([WorkerNodeConfig("workers", 2)], HeadNodeConfig({"num-cpus": "1"}), True,
                       AutoscalerOptionsConfig("Aggressive", 60))
    assert ray.worker_node_config[0].replicas == 2 and ray.autoscaler_options.idle_timeout_seconds == 60
    assert Dask(Scheduler(), WorkerGroup(3)).workers.number_of_workers == 3
    with pytest.raises(TypeError, match="at most 2 positional"):
        Dask(Scheduler(), WorkerGroup(3), "extra")
    with pytest.raises(ValueError, match="upscaling_mode"):
        AutoscalerOptionsConfig("Sometimes")
    code = ("import sys, flyteplugins.spark, flyteplugins.ray, flyteplugins.dask, flyteplugins.pytorch\n"
            "print(sorted({'pyspark', 'ray', 'torch', 'distributed'} & set(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr  # importing a plugin imports no engine


def test_cli_takes_flyte_sdk_run_flags(tmp_path):
    (tmp_path / "hello.py").write_text(
        "import os, flyte\nenv = flyte.TaskEnvironment('cli')\n"
        "@env.task\nasync def hello(name: str) -> str:\n    return os.environ['GREETING'] + ' ' + name\n")
    done = subprocess.run([sys.executable, "-m", "flyte", "run", "--local", "-e", "GREETING=hey", "--label", "a=b",
                           "-p", "proj", "-d", "development", "--follow", "hello.py", "hello", "--name", "ada"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "FLYTE_RUNS_DIR": str(tmp_path / "runs")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '"hey ada"'


def test_files_dirs_and_data_frames_between_tasks(tmp_path):
    result, _, runs = run_program("files_and_frames.py", tmp_path)
    assert result["text"] == "hello" and result["after"] == "hello"
    assert result["listing"] == ["deep.txt", "part-0.csv", "part-1.csv", "|", "part-0.csv", "part-1.csv"]
    assert result["frame"] == 10 and result["written"] == 12
    data = runs / result["run"] / "data"
    assert Path(result["file_path"]).is_relative_to(data) and Path(result["written_uri"]).is_relative_to(data)


def test_map_takes_partials_groups_its_calls_and_returns_exceptions_by_default():
    import functools

    import flyte

    env = flyte.TaskEnvironment(name="mapping")

    @env.task
    async def scale(x: int, factor: int) -> int:
        if x == 3:
            raise ValueError("three")
        return x * factor

    @env.task
    async def fan_out(xs: list[int]) -> list:
        results = [r async for r in flyte.map.aio(functools.partial(scale, factor=10), xs, group_name="scaled")]
        return [r if isinstance(r, int) else f"error: {r}" for r in results]

    run = flyte.run(fan_out, [1, 2, 3])
    assert run.outputs()[0] == [10, 20, "error: three"]
    (node,) = run.actions[0].children
    assert (node.kind, node.task_name, len(node.children)) == ("group", "scale_scaled", 3)


@pytest.mark.spark
@pytest.mark.slow
def test_flyte_sdk_spark_example(tmp_path):
    result, output, _ = run_program("spark_pi.py", tmp_path)
    assert 2.5 < result["pi"] < 3.8
    assert result["uri"].startswith("ghcr.io/example/spark:py3.10-")
    assert "PARALLELISM 2" in output and "PARALLELISM 1" in output  # the override resized the session
    assert "left out of the local session" in output  # the unreachable jar, said plainly


@pytest.mark.dask
@pytest.mark.slow
def test_flyte_sdk_dask_example(tmp_path):
    result, output, _ = run_program("dask_nested.py", tmp_path)
    assert result == {"out": [1, 2, 3], "phase": "SUCCEEDED"}
    assert "Hello from the Dask task!" in output


@pytest.mark.ray
@pytest.mark.slow
def test_flyte_sdk_ray_example(tmp_path):
    result, output, _ = run_program("ray_nested.py", tmp_path)
    assert result == {"out": [0, 1, 4]}
    assert "Hello from the Ray task!" in output


@pytest.mark.torch
@pytest.mark.slow
def test_flyte_sdk_pytorch_example(tmp_path):
    result, _, _ = run_program("torch_ddp.py", tmp_path)
    assert isinstance(result["loss"], float) and result["loss"] >= 0


def test_ctx_outside_a_task_is_a_false_null_context():
    import flyte

    outside = flyte.ctx()
    assert not outside and outside.action is None and outside.custom_context is None


def test_task_errors_are_their_own_type_and_runtime_user_errors():
    import pickle

    import flyte
    import flyte.errors

    env = flyte.TaskEnvironment(name="errs")

    class Custom(Exception):
        def __init__(self, value: int) -> None:
            super().__init__(f"custom {value}")
            self.value = value

    @env.task
    async def fails(kind: str) -> int:
        if kind == "value":
            raise ValueError("bad value")
        raise Custom(7)

    @env.task
    async def catches() -> list:
        seen = []
        for kind in ("value", "custom"):
            try:
                await fails(kind)
            except flyte.errors.RuntimeUserError as exc:  # flyte-sdk's published error handling
                seen.append([exc.code, str(exc), isinstance(exc, (ValueError, Custom)), getattr(exc, "value", None)])
        return seen

    assert flyte.run(catches).outputs()[0] == [["ValueError", "bad value", True, None], ["Custom", "custom 7", True, 7]]
    with pytest.raises(ValueError, match="bad value") as raised:  # the root's error: still its own type
        flyte.run(fails, "value")
    assert isinstance(raised.value, flyte.errors.RuntimeUserError) and type(raised.value).__name__ == "ValueError"
    assert type(pickle.loads(pickle.dumps(raised.value))) is ValueError


def test_forward_aio_forms_and_string_hashes():
    import asyncio

    import flyte
    from flyte.io import File

    env = flyte.TaskEnvironment(name="fwd")

    @env.task
    async def add(a: int, b: int) -> int:
        return a + b

    assert asyncio.run(add.forward(1, 2)) == 3  # the function itself, no run
    asyncio.run(flyte.init_from_config.aio())
    with pytest.raises(NotImplementedError, match="needs a Flyte backend"):
        asyncio.run(flyte.deploy.aio(env))
    assert File.from_local_sync(__file__, hash_method="precomputed-key").hash == "precomputed-key"


def test_a_sync_task_called_in_an_async_task_runs_even_unawaited():
    import flyte

    env = flyte.TaskEnvironment(name="unawaited")
    ran: list[int] = []

    @env.task
    def side_effect(x: int) -> int:
        ran.append(x)
        return x

    @env.task
    async def main() -> int:
        side_effect(1)  # flyte-sdk blocks here; we start it, so it is not silently dropped
        return await side_effect(2)

    assert flyte.run(main).outputs()[0] == 2
    assert sorted(ran) == [1, 2]
