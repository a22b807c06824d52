"""The runtime entrypoint (``python -m flyte.runtime``) and code bundles, run in real subprocesses from another
working directory, with user code that only the bundle provides."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile

import cloudpickle
import pytest

import flyte
from flyte import runtime
from flyte._bundle import build_bundle

USER_MODULE = textwrap.dedent(
    """
    import flyte

    env = flyte.TaskEnvironment(name="bundled")

    def helper(x):
        return x * 10

    @env.task
    async def async_task(x: int, label: str = "n") -> str:
        return f"{label}={helper(x)} run={flyte.ctx().run_name} mode={flyte.ctx().mode}"

    @env.task
    def sync_task(values: list[int]) -> int:
        return sum(helper(v) for v in values)

    @env.task
    async def failing(x: int) -> int:
        raise LookupError(f"no item {x}")
    """
)


@pytest.fixture
def user_code(tmp_path, monkeypatch):
    """A user package outside the repo and outside site-packages, importable only here via sys.path."""
    source = tmp_path / "src"
    (source / "userpkg").mkdir(parents=True)
    (source / "userpkg" / "__init__.py").write_text("")
    (source / "userpkg" / "tasks.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(source))
    monkeypatch.setenv("FLYTE_BUNDLE_CACHE", str(tmp_path / "bundles"))
    import importlib

    module = importlib.import_module("userpkg.tasks")
    yield module
    for name in [m for m in sys.modules if m.startswith("userpkg")]:
        del sys.modules[name]


def _run_entrypoint(tmp_path, task_ref, inputs, bundle, pickled=False):
    workdir = tmp_path / "elsewhere"
    workdir.mkdir(exist_ok=True)
    outputs = tmp_path / "out"
    command = [sys.executable, "-m", "flyte.runtime", "--task", task_ref, "--inputs", str(inputs),
               "--outputs", str(outputs), "--raw-data-path", str(tmp_path / "raw"), "--run-name", "pod-run"]
    if bundle:
        command += ["--bundle", str(bundle)]
    if pickled:
        command.append("--pickled-task")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=env, timeout=120)
    return result, outputs


def test_bundle_contains_the_user_package_importably(user_code):
    bundle = build_bundle()
    assert "userpkg/tasks.py" in bundle.files and "userpkg/__init__.py" in bundle.files
    assert not any(f.startswith(("flyte/", "flyteplugins/")) for f in bundle.files)
    with zipfile.ZipFile(bundle.archive) as zf:
        assert "userpkg/tasks.py" in zf.namelist()
    assert build_bundle().digest == bundle.digest  # unchanged tree: same cached bundle


def test_entrypoint_runs_an_async_task_from_a_bundle(tmp_path, user_code):
    bundle = build_bundle()
    inputs = tmp_path / "inputs.msgpack"
    runtime.write_inputs(user_code.async_task, str(inputs), 4, label="v")
    result, outputs = _run_entrypoint(tmp_path, "userpkg.tasks:async_task", inputs, bundle.archive)
    assert result.returncode == 0, result.stderr
    assert runtime.read_outputs(user_code.async_task, str(outputs)) == "v=40 run=pod-run mode=remote"


def test_entrypoint_runs_a_sync_task_from_an_unpacked_bundle(tmp_path, user_code):
    bundle = build_bundle()
    inputs = tmp_path / "inputs.msgpack"
    runtime.write_inputs(user_code.sync_task, f"file://{inputs}", [1, 2, 3])
    result, outputs = _run_entrypoint(tmp_path, "userpkg.tasks:sync_task", inputs, bundle.directory)
    assert result.returncode == 0, result.stderr
    assert runtime.read_outputs(user_code.sync_task, str(outputs)) == 60


def test_entrypoint_runs_a_pickled_notebook_task(tmp_path):
    namespace: dict = {"__name__": "__main__", "flyte": flyte}
    exec(textwrap.dedent(
        """
        env = flyte.TaskEnvironment(name="notebook")
        OFFSET = 7

        @env.task
        async def cell_task(x: int) -> int:
            return x + OFFSET
        """
    ), namespace)
    task = namespace["cell_task"]
    task_file = tmp_path / "task.pkl"
    task_file.write_bytes(cloudpickle.dumps(task))
    inputs = tmp_path / "inputs.msgpack"
    runtime.write_inputs(task, str(inputs), 5)
    result, outputs = _run_entrypoint(tmp_path, str(task_file), inputs, None, pickled=True)
    assert result.returncode == 0, result.stderr
    assert runtime.read_outputs(task, str(outputs)) == 12


def test_entrypoint_failure_writes_an_error_document_and_exits_non_zero(tmp_path, user_code):
    bundle = build_bundle()
    inputs = tmp_path / "inputs.msgpack"
    runtime.write_inputs(user_code.failing, str(inputs), 3)
    result, outputs = _run_entrypoint(tmp_path, "userpkg.tasks:failing", inputs, bundle.archive)
    assert result.returncode == 1
    assert (outputs / "error.json").exists() and not (outputs / "outputs.msgpack").exists()
    with pytest.raises(LookupError, match="no item 3") as info:
        runtime.read_outputs(user_code.failing, str(outputs))
    assert any("Remote traceback" in note and "failing" in note for note in info.value.__notes__)


def test_entrypoint_without_the_bundle_cannot_import_user_code(tmp_path, user_code):
    inputs = tmp_path / "inputs.msgpack"
    runtime.write_inputs(user_code.async_task, str(inputs), 1)
    result, outputs = _run_entrypoint(tmp_path, "userpkg.tasks:async_task", inputs, None)
    assert result.returncode == 1
    assert "ModuleNotFoundError" in (outputs / "error.json").read_text()


def test_unknown_storage_scheme_is_a_clear_error():
    from flyte import _storage

    with pytest.raises(ValueError, match=r"no storage backend for ftp://.*s3"):
        _storage.read_bytes("ftp://host/key")


def test_object_store_uris_go_through_obstore():
    from flyte import _storage

    _storage.write_bytes("memory:///run/a/outputs.msgpack", b"\x01\x02")
    assert _storage.read_bytes("memory:///run/a/outputs.msgpack") == b"\x01\x02"
    with pytest.raises(FileNotFoundError):
        _storage.read_bytes("memory:///run/a/missing")


def test_bundle_of_all_files_honours_gitignore(tmp_path, monkeypatch):
    monkeypatch.setenv("FLYTE_BUNDLE_CACHE", str(tmp_path / "bundles"))
    project = tmp_path / "project"
    (project / "pkg" / "__pycache__").mkdir(parents=True)
    (project / ".git").mkdir()
    (project / "pyproject.toml").write_text("[project]\nname='p'\n")
    (project / ".gitignore").write_text("*.log\nsecret/\n")
    (project / "pkg" / "mod.py").write_text("X = 1\n")
    (project / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"x")
    (project / "run.log").write_text("noise")
    (project / "secret").mkdir()
    (project / "secret" / "key.txt").write_text("k")
    (project / ".git" / "HEAD").write_text("ref")
    from flyte._bundle import find_project_root

    assert find_project_root(str(project / "pkg")) == str(project)
    bundle = build_bundle(str(project), include="all")
    assert set(bundle.files) == {".gitignore", "pyproject.toml", "pkg/mod.py"}
    (project / "pkg" / "mod.py").write_text("X = 2\n")
    assert build_bundle(str(project), include="all").digest != bundle.digest  # content-hashed


def test_entrypoint_runs_one_attempt_the_caller_numbered(tmp_path):
    """Retries belong to the caller (each is a new pod or job): the entrypoint runs its attempt once, however many
    retries the task has, and ``flyte.ctx().attempt_number`` is the caller's."""
    namespace: dict = {"__name__": "__main__", "flyte": flyte}
    exec(textwrap.dedent(
        """
        env = flyte.TaskEnvironment(name="retried")

        @env.task(retries=3)
        async def counted(path: str) -> int:
            with open(path, "a") as handle:
                handle.write("ran\\n")
            if flyte.ctx().attempt_number < 2:
                raise ConnectionError("flaky")
            return flyte.ctx().attempt_number
        """
    ), namespace)
    task = namespace["counted"]
    task_file = tmp_path / "task.pkl"
    task_file.write_bytes(cloudpickle.dumps(task))
    ran = tmp_path / "ran.txt"
    inputs = tmp_path / "inputs.msgpack"
    runtime.write_inputs(task, str(inputs), str(ran))
    result, outputs = _run_entrypoint(tmp_path, str(task_file), inputs, None, pickled=True)
    assert result.returncode == 1 and ran.read_text() == "ran\n"  # attempt 1 failed, and was not retried here
    assert (outputs / "error.json").exists()
    (outputs / "error.json").unlink()
    command = [sys.executable, "-m", "flyte.runtime", *runtime.arguments(
        task=str(task_file), inputs=str(inputs), outputs=str(outputs), raw_data_path=str(tmp_path / "raw"),
        run_name="pod-run", action="a1", attempt=3)]
    third = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert third.returncode == 0, third.stderr
    assert runtime.read_outputs(task, str(outputs)) == 2 and ran.read_text() == "ran\nran\n"


def test_a_one_package_bundle_keeps_its_folder_as_a_ray_working_dir(user_code, tmp_path):
    """Ray strips a zip's single top-level folder from a remote ``working_dir``; the bundle's root marker keeps
    ``userpkg/`` (the only folder of this bundle) importable on a RayJob's nodes. Checked with Ray's own unpacking."""
    packaging = pytest.importorskip("ray._private.runtime_env.packaging")
    bundle = build_bundle(root=str(tmp_path / "src"))
    assert bundle.files and all(name.startswith("userpkg/") for name in bundle.files)
    assert packaging.get_top_level_dir_from_compressed_package(str(bundle.archive)) is None
    unpacked = tmp_path / "unpacked"
    packaging.unzip_package(str(bundle.archive), str(unpacked), remove_top_level_directory=True, unlink_zip=False)
    assert (unpacked / "userpkg" / "tasks.py").exists()


def test_concurrent_writes_of_one_file_uri_all_succeed(tmp_path):
    """Two calls of one task write its pickle to the same ``file://`` URI at once, from worker threads; a temp name
    shared by the process let one write rename the other's away (FileNotFoundError in a remote call)."""
    import threading

    from flyte import _storage

    errors: list[BaseException] = []

    def write(payload: bytes) -> None:
        try:
            for _ in range(100):
                _storage.write_bytes(f"file://{tmp_path}/task.pkl", payload)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(bytes([i]) * 50_000,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and os.listdir(tmp_path) == ["task.pkl"]
    assert len(set((tmp_path / "task.pkl").read_bytes())) == 1  # one writer's whole content, not a mix


@pytest.mark.parametrize("store", ["file", "memory", "s3"])
def test_the_first_error_document_of_a_call_stands(tmp_path, store):
    """Replicas of one distributed call (TensorFlow replicas, MPI ranks, elastic nodes) share its outputs location
    and fail in a cascade: the root cause first, then the peers whose collectives it broke. The runtime writes the
    error document only if none is there, so a later replica's error never replaces the first one; on a real
    S3-compatible server (moto) that is S3's conditional put."""
    import contextlib

    from flyte import _storage

    with contextlib.ExitStack() as stack:
        if store == "s3":
            from _moto_kit import running

            stack.enter_context(running("first-error"))
            base = "s3://first-error/run/a1/1/outputs"
        else:
            base = f"file://{tmp_path}/outputs" if store == "file" else "memory:///run/a1/1/outputs"
        uri = _storage.join(base, runtime.ERROR_FILE)
        assert _storage.create_bytes(uri, b'{"root": "cause"}') is True
        assert _storage.create_bytes(uri, b'{"peer": "consequence"}') is False
        assert _storage.read_bytes(uri) == b'{"root": "cause"}'
        if store == "file":
            assert os.listdir(tmp_path / "outputs") == [runtime.ERROR_FILE]  # no temp file left


def test_a_replica_failing_after_another_leaves_the_first_error(tmp_path, user_code):
    """Two runtime processes of one call, the second failing differently: the caller reads the first's error."""
    bundle = build_bundle()
    inputs = tmp_path / "inputs.msgpack"
    runtime.write_inputs(user_code.failing, str(inputs), 3)
    first, outputs = _run_entrypoint(tmp_path, "userpkg.tasks:failing", inputs, bundle.archive)
    runtime.write_inputs(user_code.failing, str(inputs), 4)
    second, _ = _run_entrypoint(tmp_path, "userpkg.tasks:failing", inputs, bundle.archive)
    assert first.returncode == second.returncode == 1
    with pytest.raises(LookupError, match="no item 3"):
        runtime.read_outputs(user_code.failing, str(outputs))
