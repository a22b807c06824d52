"""Helpers of the Databricks tests, imported by name (``from _databricks_testkit import ...``): the Jobs API double's
access token, a moto S3 server on loopback (the store the "cluster" and the caller share), and leak checks."""

from __future__ import annotations

import logging
import os
import time
import urllib.request

import psutil

TOKEN = "dapi" + "0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # the double's token: must never show in logs or errors
BUCKET = "flyte-dbx"
DEFAULT_CLUSTER = "0101-000000-dblflyte"  # jobs_double.DEFAULT_CLUSTER, without importing the double (task modules
# are imported on the "cluster" too)
S3_ENV_KEYS = ("AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
               "AWS_DEFAULT_REGION")


class MotoS3:
    """A moto S3 server on loopback with one bucket; ``env`` is what obstore (and the cluster) read."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.env = {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/{BUCKET}", method="PUT")).read()

    def keys(self, prefix: str) -> list[str]:
        """Object keys under ``s3://BUCKET/<prefix>``."""
        import re

        with urllib.request.urlopen(f"{self.endpoint}/{BUCKET}?list-type=2&prefix={prefix}") as response:
            return re.findall(r"<Key>([^<]+)</Key>", response.read().decode())

    def read(self, key: str) -> bytes:
        from flyte import _objstore

        return _objstore.read_bytes(f"s3://{BUCKET}/{key}")

    def stop(self) -> None:
        self.server.stop()


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
