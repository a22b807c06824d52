"""A thin async client for the Kubernetes REST API on top of kubernetes_asyncio's configuration and auth.

kubernetes_asyncio loads the kubeconfig (contexts, client certificates, exec and token auth, refresh) or the
in-cluster service account; requests go through its ``ApiClient`` unparsed, so every kind, built-in or custom, is a
plain dict and watch and log streams are read line by line under our own timeouts. Throttling (429, honouring
``Retry-After``) and transient server errors (500, 502, 503, 504, a dropped connection) are retried with backoff,
a bounded number of times; other errors raise :class:`ApiError` with the server's ``Status``.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import anyio

from .settings import KubernetesSettings

_RETRIED_STATUS = {429, 500, 502, 503, 504}
MAX_TRIES = 8


class ApiError(Exception):
    """The API server refused a request: ``status`` (HTTP), ``reason`` (``NotFound``, ``AlreadyExists``...)."""

    def __init__(self, status: int, reason: str, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message, self.body = status, reason, message, body or {}


class Kube:
    """One connection pool to one cluster. Open with :meth:`connect`; close with :meth:`close`."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        self._api = api_client
        self.namespace = namespace

    @classmethod
    async def connect(cls, settings: KubernetesSettings) -> Kube:
        import os

        from kubernetes_asyncio import client, config

        configuration = client.Configuration()
        in_cluster = settings.in_cluster
        if in_cluster is None:  # a pod with a service account and no kubeconfig of its own
            in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and not (
                settings.kubeconfig or os.environ.get("KUBECONFIG"))
        if in_cluster and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)
        else:
            await config.load_kube_config(config_file=settings.kubeconfig, context=settings.context,
                                          client_configuration=configuration)
        return cls(client.ApiClient(configuration=configuration), settings.namespace)

    async def close(self) -> None:
        await self._api.close()

    # -- requests ---------------------------------------------------------------------------------------------
    async def _send(self, method: str, path: str, query: dict[str, Any] | None, body: Any,
                    content_type: str | None, request_timeout: float | tuple[float, float] | None) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        params = [(k, _query_value(v)) for k, v in (query or {}).items() if v is not None]
        return await self._api.call_api(path, method, query_params=params, header_params=headers, body=body,
                                        auth_settings=["BearerToken"], _preload_content=False,
                                        _request_timeout=request_timeout)

    async def request(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
                      content_type: str | None = None, request_timeout: float = 30.0) -> dict[str, Any]:
        """One API call, retried on throttling and transient errors; the response's JSON."""
        for attempt in range(1, MAX_TRIES + 1):
            try:
                response = await self._send(method, path, query, body, content_type, request_timeout)
                data = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After")
                response.release()
            except (OSError, asyncio.TimeoutError) as exc:
                if attempt == MAX_TRIES:
                    raise ApiError(0, "Unreachable", f"{method} {path}: {exc}") from exc
                await asyncio.sleep(_backoff(attempt))
                continue
            except Exception as exc:  # aiohttp's ClientError (imported lazily with kubernetes_asyncio)
                if type(exc).__module__.startswith("aiohttp") and attempt < MAX_TRIES:
                    await asyncio.sleep(_backoff(attempt))
                    continue
                raise
            if 200 <= status < 300:
                return json.loads(data) if data else {}
            if status in _RETRIED_STATUS and attempt < MAX_TRIES:
                await asyncio.sleep(_retry_delay(retry_after, attempt))
                continue
            raise _error(status, data, f"{method} {path}")
        raise AssertionError("unreachable")

    async def stream_lines(self, path: str, query: dict[str, Any], *, idle_timeout: float) -> AsyncIterator[bytes]:
        """The lines of a streaming response (a watch, a followed log). Raises ``asyncio.TimeoutError`` when
        nothing (not even a bookmark) arrives for ``idle_timeout`` seconds: a stalled stream. Ends when the server
        ends the stream; a dropped connection raises ``ConnectionError``."""
        response = None
        for attempt in range(1, MAX_TRIES + 1):
            response = await self._send("GET", path, query, None, None, (None, idle_timeout))
            if response.status in _RETRIED_STATUS and attempt < MAX_TRIES:
                retry_after = response.headers.get("Retry-After")
                response.release()
                await asyncio.sleep(_retry_delay(retry_after, attempt))
                continue
            break
        assert response is not None
        try:
            if response.status >= 300:
                raise _error(response.status, await response.read(), f"GET {path}")
            while True:
                try:
                    # Not asyncio.wait_for: on Python < 3.12 it can swallow a cancellation that arrives with a line.
                    with anyio.fail_after(idle_timeout):
                        line = await response.content.readline()
                except TimeoutError:
                    raise
                except Exception as exc:  # aiohttp's payload errors: the connection broke mid-stream
                    raise ConnectionError(f"stream {path} broke: {exc}") from exc
                if not line:
                    return
                yield line
        finally:
            response.close()

    # -- conveniences -----------------------------------------------------------------------------------------
    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, body=body)

    async def get(self, path: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def delete(self, path: str, propagation: str = "Foreground") -> bool:
        """Delete; False when it was already gone."""
        try:
            await self.request("DELETE", path, body={"kind": "DeleteOptions", "apiVersion": "v1",
                                                     "propagationPolicy": propagation})
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel a background task and wait until it has ended, cancelling again should a cancellation be lost."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not report it as never retrieved


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _backoff(attempt: int) -> float:
    return min(8.0, 0.1 * 2 ** attempt) * (0.5 + random.random() / 2)


def _retry_delay(retry_after: str | None, attempt: int) -> float:
    if retry_after:
        try:
            return min(30.0, max(0.0, float(retry_after)))
        except ValueError:
            pass
    return _backoff(attempt)


def _error(status: int, data: bytes, what: str) -> ApiError:
    try:
        body = json.loads(data)
    except ValueError:
        body = {}
    reason = body.get("reason") or {404: "NotFound", 409: "AlreadyExists", 422: "Invalid"}.get(status, "Error")
    message = body.get("message") or data[:300].decode(errors="replace") or what
    return ApiError(status, reason, f"{what}: {message}", body)
