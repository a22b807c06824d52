"""A remote run's data on its store, against the Kubernetes API server double (a test double of the API server, Job
controller and kubelet whose pods are local processes; see ``kube_double``) and a real S3-compatible server (moto):

- ``storage: file://<folder>`` (a shared volume; the double's pods are local processes, so a folder of this machine
  is shared by them): the nested program runs with the same outputs as locally, every call's inputs and outputs
  go through the folder, and the run leaves only its ``data/`` there;
- flyte.io values (a File, a pandas DataFrame) made in one pod are read in another and by the caller through the
  run's ``data/`` prefix;
- the code bundle is uploaded once per content: two runs of the same program, whose root pods call children, PUT
  it once (counted as object versions in a versioned bucket).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from _k8s_testkit import HERE, outputs_json, run_program, settings_for, wait_clean

pytestmark = [pytest.mark.k8s, pytest.mark.slow,
              pytest.mark.skipif(__import__("_k8s_testkit").REAL_CLUSTER,
                                 reason="reads the double's store folder and moto's bucket")]


@pytest.fixture
def file_store(kube, tmp_path):
    """A folder with a config.yaml whose storage is ``file://<tmp>/store``; returns (folder, store)."""
    store = tmp_path / "store"
    store.mkdir()
    settings = settings_for(kube, remote=True, storage=f"file://{store}")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"kubernetes": settings}))
    return tmp_path, store


def _files_under(root: Path) -> set[str]:
    found = set()
    for folder, _, names in os.walk(root):
        found.update(os.path.relpath(os.path.join(folder, name), root) for name in names)
    return found


def test_file_store_runs_the_nested_program_through_the_shared_folder(file_store, kube):
    cwd, store = file_store
    local = run_program("nested.py", "local", cwd=cwd)
    assert local.returncode == 0, local.stderr[-3000:]
    seen: set[str] = set()
    program = subprocess.Popen([sys.executable, str(HERE / "programs" / "nested.py"), "remote"], cwd=cwd,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while program.poll() is None:  # what the run writes to the folder, as it exists
            seen |= _files_under(store)
            time.sleep(0.05)
        out, err = program.communicate(timeout=60)
    finally:
        program.kill()
    remote = subprocess.CompletedProcess(program.args, program.returncode, out, err)
    assert remote.returncode == 0, err[-5000:]
    assert outputs_json(remote) == outputs_json(local) == {
        "gathered": [0, 1, 4], "mapped": [0, 1, 4], "overridden": "hello", "total": 6}
    calls = [Path(path) for path in seen if path.startswith("runs/")]
    # main, fan_out with 3 squares, mapped with 3 squares, env_value and add: 11 calls, each with its inputs and
    # outputs under runs/<run>/<action>/1/ in the folder, written and read by the pods and the caller.
    inputs = {path.parent for path in calls if path.name == "inputs.msgpack"}
    outputs = {path.parent.parent for path in calls if path.name == "outputs.msgpack" and path.parts[-2] == "outputs"}
    assert len(inputs) == 11 and outputs == inputs, sorted(seen)
    assert len({path.parts[1] for path in calls}) == 1  # one run
    assert any(path.startswith("bundles/") for path in seen)
    # The run removed its call data when it ended; its data/ (what outputs may point to) stays.
    left = {Path(path).parts[2] for path in _files_under(store) if path.startswith("runs/")}
    assert left <= {"data"}, left
    assert wait_clean(kube) == []


def test_file_store_flyte_io_values_land_in_the_shared_folder(file_store, kube):
    cwd, store = file_store
    files = run_program("cluster_calls.py", "files", cwd=cwd)
    assert files.returncode == 0, files.stderr[-3000:]
    assert "READ hello ✓" in files.stdout and "CALLER hello ✓" in files.stdout
    frames = run_program("frames.py", "remote", cwd=cwd)
    assert frames.returncode == 0, frames.stderr[-3000:]
    assert "TOTAL 45" in frames.stdout and "CALLER 45" in frames.stdout
    assert wait_clean(kube) == []
    for line in (*files.stdout.splitlines(), *frames.stdout.splitlines()):
        if line.startswith(("PATH ", "URI ")):
            where = line.split(" ", 1)[1]
            assert str(store) in where and "/runs/" in where and "/data/" in where, line


def test_a_dataframe_crosses_pods_and_comes_back_through_the_runs_data(config_dir, kube):
    storage = yaml.safe_load((config_dir / "config.yaml").read_text())["kubernetes"]["storage"]
    result = run_program("frames.py", "remote", cwd=config_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "TOTAL 45" in result.stdout and "CALLER 45" in result.stdout, result.stdout
    uri = next(line.split(" ", 1)[1] for line in result.stdout.splitlines() if line.startswith("URI "))
    assert uri.startswith(f"{storage}/runs/") and "/data/" in uri and uri.endswith(".parquet"), uri
    assert wait_clean(kube) == []


def _s3(endpoint: str, method: str, path: str, body: bytes | None = None) -> bytes:
    # A content type that is not a form's: the server would otherwise parse the body as form fields.
    request = urllib.request.Request(f"{endpoint}{path}", data=body, method=method,
                                     headers={"Content-Type": "application/xml"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30) as response:
        return response.read()


def test_the_code_bundle_is_uploaded_once_per_content(kube, tmp_path, s3_endpoint):
    """Two runs of one program whose pods call children: every pod needs the bundle (the tasks use a module of the
    user's), and it is PUT once. In a versioned bucket every PUT is a version, so the versions count the PUTs."""
    bucket = "flyte-bundles"
    _s3(s3_endpoint, "PUT", f"/{bucket}")
    _s3(s3_endpoint, "PUT", f"/{bucket}?versioning", b'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/'
                                                      b'2006-03-01/"><Status>Enabled</Status></VersioningConfiguration>')
    prefix = uuid.uuid4().hex[:8]
    settings = settings_for(kube, remote=True, storage=f"s3://{bucket}/{prefix}")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"kubernetes": settings}))
    start = len(kube.requests)
    for _ in range(2):
        result = run_program("bundled.py", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "RESULT A!,B!" in result.stdout
    created = [path for method, path in kube.requests[start:] if method == "POST" and path.endswith("/jobs")]
    assert len(created) == 6  # per run: the root and its two children, each a pod that imported the bundle
    listing = ET.fromstring(_s3(s3_endpoint, "GET", f"/{bucket}?versions&prefix="
                                                    f"{urllib.parse.quote(prefix + '/bundles/')}"))
    namespace = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
    versions = [(v.findtext("s3:Key", namespaces=namespace), v.findtext("s3:VersionId", namespaces=namespace))
                for v in listing.findall("s3:Version", namespace)]
    assert len(versions) == 1 and versions[0][0].endswith(".zip"), versions
    assert wait_clean(kube) == []
