"""A moto S3 server on loopback, the real S3-compatible store of the tests that need one (the Kubernetes tier's pods
and the Databricks double's "cluster" meet their callers there). Imported by name (``from _moto_kit import ...``)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import urllib.request
from collections.abc import Iterator


class MotoS3:
    """The server, with one bucket; ``env`` is what obstore (and whatever runs against the store) reads."""

    def __init__(self, bucket: str) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.bucket = bucket
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.env = {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/{bucket}", method="PUT")).read()

    def keys(self, prefix: str) -> list[str]:
        """Object keys under ``s3://<bucket>/<prefix>``."""
        with urllib.request.urlopen(f"{self.endpoint}/{self.bucket}?list-type=2&prefix={prefix}") as response:
            return re.findall(r"<Key>([^<]+)</Key>", response.read().decode())

    def read(self, key: str) -> bytes:
        from flyte import _objstore

        return _objstore.read_bytes(f"s3://{self.bucket}/{key}")

    def stop(self) -> None:
        self.server.stop()


@contextlib.contextmanager
def running(bucket: str) -> Iterator[MotoS3]:
    """A server for the block, its ``env`` in this process's environment (so processes started meanwhile inherit
    it, as pods and clusters get their store's settings); both undone after."""
    server = MotoS3(bucket)
    saved = {key: os.environ.get(key) for key in server.env}
    os.environ.update(server.env)
    try:
        yield server
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
