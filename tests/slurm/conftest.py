"""Fixtures of the Slurm tests: one real single-node cluster for the session (see ``_slurm_testkit``), and a
per-test check that no job, run directory on the cluster or local temp dir outlives a test.

Where the Slurm packages are missing the cluster tests are skipped, except on CI (``CI`` set), where
``scripts/bootstrap`` installs them: there a cluster that cannot start fails the tests."""

from __future__ import annotations

import glob
import os
import tempfile
import time

import pytest
from _slurm_testkit import ClusterUnavailable, missing_binaries, start_cluster


@pytest.fixture(scope="session", autouse=True)
def private_tempdir(tmp_path_factory):
    """Python's temp dir for these tests: the runs' temp dirs land here, apart from those of other test sessions
    sharing this machine, so the leak check sees only this session's leftovers."""
    previous = tempfile.tempdir
    tempfile.tempdir = str(tmp_path_factory.mktemp("slurm-tmp"))
    try:
        yield tempfile.tempdir
    finally:
        tempfile.tempdir = previous


@pytest.fixture(scope="session")
def slurm_cluster(private_tempdir):
    if missing_binaries() and not os.environ.get("CI"):
        pytest.skip(f"Slurm is not installed here ({', '.join(missing_binaries())} missing); scripts/bootstrap "
                    "installs it")
    try:
        cluster = start_cluster()
    except ClusterUnavailable as exc:
        pytest.fail(f"the test Slurm cluster could not start: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()
    from flyte.extend import processes_naming

    assert processes_naming(str(cluster.root)) == [], "test cluster daemons left running"
    assert not cluster.root.exists(), f"{cluster.root} left behind"


@pytest.fixture
def cluster(slurm_cluster):
    """The session's cluster, with checks after the test: no job left in ``squeue``, no run directory left on
    the cluster (``remote_dir``), no ``flyte-*`` temp dir of the test's runs left here."""
    before = set(os.listdir(tempfile.gettempdir()))
    yield slurm_cluster
    slurm_cluster.wait_idle(timeout=30)
    assert slurm_cluster.active_jobs() == [], f"jobs left in squeue: {slurm_cluster.active_jobs()}"
    left = sorted(os.listdir(slurm_cluster.remote_dir))
    assert left == [], f"run directories left on the cluster: {left}"
    leaked = sorted(name for name in set(os.listdir(tempfile.gettempdir())) - before
                    if name.startswith("flyte-") and name != slurm_cluster.root.name)
    assert leaked == [], f"temporary directories left: {leaked}"
    # The login node's side: the command shells' temp dirs go when their connection closes.
    end = time.monotonic() + 10
    while glob.glob("/tmp/flyte-slurm.*") and time.monotonic() < end:
        time.sleep(0.1)
    assert glob.glob("/tmp/flyte-slurm.*") == [], "command shell temp dirs left on the login node"
