"""Helpers of the Databricks tests, imported by name (``from _databricks_testkit import ...``): the Jobs API double's
access token, the store's bucket (a moto S3 server, ``_moto_kit``, is the store the "cluster" and the caller
share), and leak checks."""

from __future__ import annotations

import os
import time

import psutil

TOKEN = "dapi" + "0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # the double's token: must never show in logs or errors
BUCKET = "flyte-dbx"
DEFAULT_CLUSTER = "0101-000000-dblflyte"  # jobs_double.DEFAULT_CLUSTER, without importing the double (task modules
# are imported on the "cluster" too)
S3_ENV_KEYS = ("AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
               "AWS_DEFAULT_REGION")


def driver_processes() -> list[psutil.Process]:
    """spark-submit drivers (JVMs and the Python they run) descending from this test process."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            line = " ".join(child.cmdline())
            name = child.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if name == "java" or "spark-submit" in line or "flyte-runtime" in line or "pyspark" in line:
            found.append(child)
    return found


def wait_no_drivers(timeout: float = 20.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        left = driver_processes()
        if not left or time.monotonic() > deadline:
            return [f"{p.pid}:{p.name()}" for p in left]
        time.sleep(0.2)


def scratch_left(root: str) -> list[str]:
    """Run folders the double left in its root (each run's is removed when it ends)."""
    return sorted(name for name in os.listdir(root) if name.startswith("dbx-run")) if os.path.isdir(root) else []
