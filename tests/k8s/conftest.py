"""Fixtures of the Kubernetes tier's tests: the in-repo API server double (``kube_double``: a fake API server with
a Job controller and a fake kubelet that runs each pod's container as a local process), a real S3-compatible server
(moto on loopback) for the object store, and the settings that point runs at them.

Against a real cluster: set ``FLYTE_TEST_STORAGE`` (an object-store URI the cluster's pods can reach, with the
cloud's credentials in this environment) and a kubeconfig (``KUBECONFIG``, or ``FLYTE_TEST_KUBECONFIG`` to keep it
apart), and optionally ``FLYTE_TEST_CONTEXT``, ``FLYTE_TEST_NAMESPACE``, ``FLYTE_TEST_IMAGE`` (an image with this SDK
and the engines installed), ``FLYTE_TEST_STORAGE_SECRET`` (a Secret with the store's credentials, given to the pods
as environment) and ``FLYTE_TEST_SERVICE_ACCOUNT``; then ``pytest -m real_cluster``. The tests marked
``real_cluster`` run against that cluster instead of the double; every other Kubernetes test needs the double (its
objects, processes or fault injection) and is skipped.
"""

from __future__ import annotations

import os
import sys

import pytest
from _k8s_testkit import BUCKET, CRDS, REAL_CLUSTER, settings_for

from _moto_kit import running


@pytest.fixture(scope="session")
def s3_endpoint():
    """A moto S3 server on loopback, and the environment (endpoint, dummy credentials) obstore reads."""
    if REAL_CLUSTER:
        yield None
        return
    with running(BUCKET) as server:
        yield server.endpoint


@pytest.fixture(scope="session")
def kube(s3_endpoint):
    """The API server double, shared by the session (started after the S3 variables are set: its pods inherit
    its environment, as pods inherit their image's)."""
    if REAL_CLUSTER:
        yield None
        return
    from kube_double import KubeDouble

    # Pods see this environment, as they would see their image's: the SDK's commands (flyte-runtime.py, which a
    # SparkApplication runs as its main file) are on PATH there as in an image.
    os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    double = KubeDouble(crd_dir=str(CRDS) if CRDS.is_dir() else None, bookmark_interval_s=1.0)
    double.start()
    try:
        yield double
    finally:
        double.stop()


@pytest.fixture
def k8s_settings(kube):
    """Settings for this test (its own storage prefix); ``flyte.init(kubernetes=...)`` with them, undone after."""
    import flyte
    from flyte import _initialize

    settings = settings_for(kube)
    flyte.init(kubernetes=settings)
    yield settings
    _initialize._current = None


@pytest.fixture
def config_dir(tmp_path, kube):
    """A folder with a config.yaml naming the cluster: a program run there with ``flyte.init_from_config()`` finds it."""
    import yaml

    settings = settings_for(kube, remote=True)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"kubernetes": settings}))
    return tmp_path




def pytest_collection_modifyitems(config, items):
    """Against a real cluster, only the tests marked ``real_cluster`` run: the rest need the double."""
    if not REAL_CLUSTER:
        return
    skip = pytest.mark.skip(reason="needs the API server double (a real cluster is configured)")
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here) and item.get_closest_marker("real_cluster") is None:
            item.add_marker(skip)
