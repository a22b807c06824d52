"""Object storage (``s3://``, ``gs://``, ``abfs://``/``az://``, ``memory://``) through obstore.

The Kubernetes tier keeps a run's code bundle, inputs, outputs and offloaded data under the run's prefix on an object
store; a pod and its caller meet there. One store per bucket (or container), made on first use and reused. Settings
come from the usual environment variables of each cloud (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_ALLOW_HTTP``, ``GOOGLE_SERVICE_ACCOUNT``, ``AZURE_STORAGE_ACCOUNT_NAME``...), as obstore reads them, so a pod
gets the same access as its caller by getting the same variables (or its cloud identity). obstore is imported on
first use only.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlparse

SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "azure", "adl", "memory"})
_stores: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


def is_object_uri(uri: str) -> bool:
    return urlparse(uri).scheme in SCHEMES


def _split(uri: str) -> tuple[Any, str]:
    """The store for ``uri``'s bucket and the object's key in it."""
    parsed = urlparse(uri)
    scheme = "gs" if parsed.scheme == "gcs" else parsed.scheme
    if scheme not in SCHEMES:
        raise ValueError(f"{uri!r}: not an object-store URI; allowed schemes: {', '.join(sorted(SCHEMES))}")
    bucket = parsed.netloc
    key = parsed.path.lstrip("/")
    with _lock:
        store = _stores.get((scheme, bucket))
        if store is None:
            from obstore.store import from_url

            store = from_url(f"{scheme}://{bucket}/")
            _stores[(scheme, bucket)] = store
    return store, key


def read_bytes(uri: str) -> bytes:
    import obstore

    store, key = _split(uri)
    return bytes(obstore.get(store, key).bytes())


def write_bytes(uri: str, data: bytes) -> None:
    import obstore

    store, key = _split(uri)
    obstore.put(store, key, data)


def create_bytes(uri: str, data: bytes) -> bool:
    """Write ``data`` only if nothing is at ``uri`` yet (a conditional put, atomic on the store); whether it wrote."""
    import obstore
    from obstore.exceptions import AlreadyExistsError, NotSupportedError

    store, key = _split(uri)
    try:
        obstore.put(store, key, data, mode="create")
    except AlreadyExistsError:
        return False
    except NotSupportedError:  # a store without conditional writes: check, then write (not atomic, but close)
        try:
            obstore.head(store, key)
            return False
        except FileNotFoundError:
            obstore.put(store, key, data)
    return True


async def read_bytes_async(uri: str) -> bytes:
    import obstore

    store, key = _split(uri)
    result = await obstore.get_async(store, key)
    return bytes(await result.bytes_async())


async def write_bytes_async(uri: str, data: bytes) -> None:
    import obstore

    store, key = _split(uri)
    await obstore.put_async(store, key, data)


async def exists_async(uri: str) -> bool:
    import obstore

    store, key = _split(uri)
    try:
        await obstore.head_async(store, key)
    except FileNotFoundError:
        return False
    return True


def list_keys(uri_prefix: str) -> list[str]:
    """URIs of the objects under ``uri_prefix``."""
    import obstore

    store, key = _split(uri_prefix)
    parsed = urlparse(uri_prefix)
    base = f"{parsed.scheme}://{parsed.netloc}/"
    return [base + item["path"] for batch in obstore.list(store, prefix=key) for item in batch]


def delete_prefix(uri_prefix: str, keep: str | None = None) -> int:
    """Delete every object under ``uri_prefix`` except those under ``keep`` (a URI prefix); returns how many."""
    import obstore

    store, key = _split(uri_prefix)
    kept = _split(keep)[1] if keep else None
    paths = [item["path"] for batch in obstore.list(store, prefix=key) for item in batch
             if kept is None or not item["path"].startswith(kept)]
    if paths:
        obstore.delete(store, paths)
    return len(paths)
