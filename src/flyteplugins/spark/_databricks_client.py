"""The Databricks REST endpoints a call uses, async over aiohttp, with the workspace's throttling and outages
absorbed: the Jobs API 2.1 (runs/submit, runs/get, runs/get-output, runs/cancel) and, when the call's storage is a
Unity Catalog volume, the Files API 2.0 (files and directories under ``/Volumes/...``).

A request answered 429 or 5xx, or lost on the way (connection refused or reset, no answer in time), is sent again
after the ``Retry-After`` the answer gave, else an exponential backoff with jitter, until :class:`RetryPolicy`'s
attempts or time run out. Every endpoint used is safe to repeat: runs/submit carries an idempotency token (the
workspace starts one run per token), runs/cancel of a cancelled run does nothing, a file upload overwrites. Other answers fail at once with
:class:`DatabricksApiError` (status, the API's ``error_code`` and message).

The access token lives only in the request header: it is not logged, not in any error, not in ``repr``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import os
import random
import time
from dataclasses import dataclass
from typing import Any

from flyte import Secret

from ._databricks_config import INSTANCE_ENV, TOKEN_ENVS, DatabricksV2
from ._databricks_errors import DatabricksApiError

log = logging.getLogger("flyteplugins.spark.databricks")

JOBS_API = "/api/2.1/jobs"
FILES_API = "/api/2.0/fs"
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
_SECRETS_MOUNT = "/etc/flyte/secrets"


@dataclass(frozen=True)
class RetryPolicy:
    """How long a request keeps trying: ``attempts`` in all, within ``total_s``; between tries the server's
    ``Retry-After`` (at most ``max_delay_s``) or ``base_delay_s`` doubled each time with full jitter."""

    attempts: int = 8
    total_s: float = 300.0
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    request_timeout_s: float = 60.0

    def backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))


def base_url(instance: str) -> str:
    """``https://<instance>`` (an instance given with its scheme, as a test double's ``http://`` is, is kept)."""
    instance = instance.strip().rstrip("/")
    return instance if instance.startswith(("https://", "http://")) else f"https://{instance}"


def resolve_instance(config: DatabricksV2) -> str:
    instance = config.databricks_instance or os.environ.get(INSTANCE_ENV) or ""
    if not instance.strip():
        raise ValueError(f"{type(config).__name__}: no Databricks workspace; set databricks_instance="
                         f"'<account>.cloud.databricks.com' or the {INSTANCE_ENV} environment variable")
    return instance.strip()


def resolve_token(config: DatabricksV2) -> str:
    """The access token: from ``databricks_token``'s secret, else the first of ``DATABRICKS_TOKEN``,
    ``FLYTE_DATABRICKS_ACCESS_TOKEN`` that is set. Errors name where it was looked for, never a value."""
    secret = config.databricks_token
    if isinstance(secret, Secret):
        value = secret_value(secret)
        if value:
            return value
        where = f"environment variable {secret.as_env_var}" if secret.as_env_var else \
            f"file {_SECRETS_MOUNT}/{secret.group or secret.key}/{secret.key}"
        raise ValueError(f"{type(config).__name__}.databricks_token: the secret {secret.key!r} is not set here "
                         f"(looked for the {where}); provide it, or list it in the environment's secrets= for "
                         "remote runs")
    for name in TOKEN_ENVS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    raise ValueError(f"{type(config).__name__}: no Databricks access token; set databricks_token=flyte.Secret(...) "
                     f"or the {TOKEN_ENVS[0]} environment variable")


def secret_value(secret: Secret) -> str | None:
    """A secret's value where flyte puts it: its environment variable, or its file under /etc/flyte/secrets."""
    if secret.as_env_var:
        value = os.environ.get(secret.as_env_var, "").strip()
        return value or None
    path = os.path.join(_SECRETS_MOUNT, secret.group or secret.key, secret.key)
    try:
        with open(path) as handle:
            return handle.read().strip() or None
    except OSError:
        return None


class DatabricksClient:
    """One workspace's REST API: the Jobs API endpoints of a run, and the Files API for a Unity Catalog volume
    used as storage. ``async with DatabricksClient(instance, token) as client: ...``"""

    def __init__(self, instance: str, token: str, retry: RetryPolicy | None = None) -> None:
        self.base_url = base_url(instance)
        self.retry = retry or RetryPolicy()
        self.__token = token
        self._session: Any = None

    def __repr__(self) -> str:
        return f"DatabricksClient({self.base_url!r})"

    async def __aenter__(self) -> DatabricksClient:
        self.open()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def open(self) -> None:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self.__token}", "User-Agent": "flyte-distributed-databricks"},
                timeout=aiohttp.ClientTimeout(total=self.retry.request_timeout_s))

    async def close(self) -> None:
        if self._session is not None:
            import anyio

            session, self._session = self._session, None
            with anyio.CancelScope(shield=True):  # a cancelled call still closes its connections
                await session.close()

    # -- Jobs API 2.1 -----------------------------------------------------------------------------------------
    async def submit(self, request: dict[str, Any]) -> int:
        """runs/submit: the new run's id (the same run again for a repeated idempotency token)."""
        answer = await self._request("POST", f"{JOBS_API}/runs/submit", body=request)
        return int(answer["run_id"])

    async def get_run(self, run_id: int) -> dict[str, Any]:
        return await self._request("GET", f"{JOBS_API}/runs/get", params={"run_id": str(run_id)})

    async def get_output(self, run_id: int) -> dict[str, Any]:
        """runs/get-output of a task run (the API refuses it for a run with several tasks)."""
        return await self._request("GET", f"{JOBS_API}/runs/get-output", params={"run_id": str(run_id)})

    async def cancel(self, run_id: int) -> None:
        await self._request("POST", f"{JOBS_API}/runs/cancel", body={"run_id": run_id})

    # -- Files API 2.0 (volume paths: /Volumes/<catalog>/<schema>/<volume>/...) ---------------------------------
    async def read_file(self, path: str) -> bytes:
        """A file's bytes; FileNotFoundError if there is none."""
        return await self._request("GET", f"{FILES_API}/files{_quoted(path)}", raw=True, missing_ok=False)

    async def write_file(self, path: str, data: bytes) -> None:
        await self._request("PUT", f"{FILES_API}/files{_quoted(path)}", data=data, params={"overwrite": "true"})

    async def file_exists(self, path: str) -> bool:
        try:
            await self._request("HEAD", f"{FILES_API}/files{_quoted(path)}", raw=True, missing_ok=False)
        except FileNotFoundError:
            return False
        return True

    async def make_directory(self, path: str) -> None:
        """Create a directory and its parents (``mkdir -p``; nothing to do if it exists)."""
        await self._request("PUT", f"{FILES_API}/directories{_quoted(path)}")

    async def list_directory(self, path: str) -> list[dict[str, Any]]:
        """The entries of a directory (``path``, ``is_directory``...), every page; [] if it does not exist."""
        entries: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params = {"page_token": token} if token else None
            try:
                page = await self._request("GET", f"{FILES_API}/directories{_quoted(path)}", params=params,
                                           missing_ok=False)
            except FileNotFoundError:
                return entries
            entries.extend(page.get("contents") or [])
            token = page.get("next_page_token")
            if not token:
                return entries

    async def delete_file(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await self._request("DELETE", f"{FILES_API}/files{_quoted(path)}", missing_ok=False)

    async def delete_directory(self, path: str) -> None:
        """Delete an empty directory."""
        with contextlib.suppress(FileNotFoundError):
            await self._request("DELETE", f"{FILES_API}/directories{_quoted(path)}", missing_ok=False)

    # -- transport --------------------------------------------------------------------------------------------
    async def _request(self, method: str, path: str, *, body: dict[str, Any] | None = None,
                       params: dict[str, str] | None = None, data: bytes | None = None, raw: bool = False,
                       missing_ok: bool = True) -> Any:
        """One call, retried as the module docstring says. ``raw``: the body's bytes, not JSON. Unless
        ``missing_ok``, a 404 raises FileNotFoundError (the Files API's answer for a path that does not exist)."""
        import aiohttp

        assert self._session is not None, "use DatabricksClient as an async context manager"
        url = f"{self.base_url}{path}"
        endpoint = path.removeprefix(JOBS_API + "/") if path.startswith(JOBS_API) else path.split("/")[4]
        policy = self.retry
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            delay: float | None = None
            try:
                headers = {"Content-Type": "application/octet-stream"} if data is not None else None
                async with self._session.request(method, url, json=body, params=params, data=data,
                                                 headers=headers) as response:
                    status = response.status
                    content = await response.read()
                    if 200 <= status < 300:
                        return content if raw else (_json(content.decode(errors="replace")) or {})
                    if status == 404 and not missing_ok:
                        raise FileNotFoundError(path)
                    problem = _error_of(status, content.decode(errors="replace"))
                    if status not in RETRIED_STATUSES:
                        raise DatabricksApiError(f"Databricks {endpoint} (at {self.base_url}) answered {status}: "
                                                 f"{problem[1]}", status, problem[0])
                    delay = _retry_after(response.headers.get("Retry-After"))
                    reason = f"{status} {problem[0] or ''} {problem[1]}".strip()
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError) as exc:
                status, reason = None, f"{type(exc).__name__}: {exc}"
            elapsed = time.monotonic() - started
            wait = min(delay, policy.max_delay_s) if delay is not None else policy.backoff(attempt)
            if attempt >= policy.attempts or elapsed + wait > policy.total_s:
                raise DatabricksApiError(f"Databricks {endpoint} (at {self.base_url}) failed {attempt} time(s) in "
                                         f"{elapsed:.0f}s; last: {reason}", status)
            log.info("Databricks %s: %s; trying again in %.1fs", endpoint, reason, wait)
            await asyncio.sleep(wait)


def _quoted(path: str) -> str:
    from urllib.parse import quote

    return quote(path if path.startswith("/") else "/" + path)


def _json(text: str) -> Any:
    import json

    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return None


def _error_of(status: int, text: str) -> tuple[str | None, str]:
    """(error_code, message) of an error answer: the API's JSON, else the start of the body (a proxy's page)."""
    data = _json(text)
    if isinstance(data, dict) and (data.get("message") or data.get("error_code")):
        return data.get("error_code"), str(data.get("message") or "")
    snippet = " ".join(text.split())[:200]
    return None, snippet or f"HTTP {status}"


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
