"""What a Databricks call can end in, as errors that say what happened and where to look (the run's page).

A run that ends other than SUCCESS becomes a :class:`DatabricksRunError` (``code`` the life-cycle or result state:
INTERNAL_ERROR, SKIPPED, FAILED, TIMEDOUT, CANCELED...), with the run's error and trace from runs/get-output;
TIMEDOUT is also a :class:`flyte.errors.TaskTimeoutError`. An API request that fails for good is a
:class:`DatabricksApiError` with the HTTP status and the API's ``error_code``. Neither ever carries the token.
"""

from __future__ import annotations

from typing import Any

from flyte.errors import RuntimeUserError, TaskTimeoutError

# Terminal life-cycle states other than TERMINATED, which has a result state.
FAILED_LIFE_CYCLES = {"INTERNAL_ERROR", "SKIPPED"}
TERMINAL_LIFE_CYCLES = {"TERMINATED", *FAILED_LIFE_CYCLES}
SYSTEM_CODES = {"INTERNAL_ERROR", "SKIPPED", "MAXIMUM_CONCURRENT_RUNS_REACHED"}

_WHAT = {
    "INTERNAL_ERROR": "failed in the Databricks Jobs service (INTERNAL_ERROR), not in the task's code",
    "SKIPPED": "was skipped by Databricks (SKIPPED) before it ran",
    "FAILED": "failed (FAILED)",
    "TIMEDOUT": "was stopped by Databricks after its timeout_seconds (TIMEDOUT)",
    "CANCELED": "was cancelled on Databricks (CANCELED) by someone other than this task",
    "MAXIMUM_CONCURRENT_RUNS_REACHED": "was not started: the maximum of concurrent runs was reached",
    "EXCLUDED": "was excluded (EXCLUDED)",
    "UPSTREAM_FAILED": "was not run: an upstream task failed (UPSTREAM_FAILED)",
    "UPSTREAM_CANCELED": "was not run: an upstream task was cancelled (UPSTREAM_CANCELED)",
    "DISABLED": "was not run: it is disabled (DISABLED)",
}


class DatabricksApiError(RuntimeUserError):
    """A Jobs API request failed for good: ``status`` (HTTP), ``error_code`` (the API's, e.g.
    ``INVALID_PARAMETER_VALUE``) and the API's message. ``kind`` is "system" for server-side failures (5xx after the
    retries, the workspace unreachable), "user" for the request's own faults (4xx)."""

    def __init__(self, message: str, status: int | None = None, error_code: str | None = None) -> None:
        super().__init__(error_code or (f"HTTP{status}" if status else "DatabricksApiError"), message)
        self.status = status
        self.error_code = error_code
        if status is None or status >= 500 or status == 429:
            self.kind = "system"

    def __reduce__(self) -> Any:
        return (type(self), (str(self), self.status, self.error_code))


class DatabricksRunError(RuntimeUserError):
    """A Databricks run ended other than SUCCESS. ``code`` is its result (or life-cycle) state; ``run_id``,
    ``run_page_url``, ``state_message``, and from runs/get-output ``error`` and ``error_trace`` say more."""

    def __init__(self, message: str, code: str, run_id: int | None = None, run_page_url: str | None = None,
                 state_message: str = "", error: str = "", error_trace: str = "") -> None:
        RuntimeUserError.__init__(self, code, message)  # not super(): TaskTimeoutError's takes (message, code)
        self.run_id = run_id
        self.run_page_url = run_page_url
        self.state_message = state_message
        self.error = error
        self.error_trace = error_trace
        if code in SYSTEM_CODES:
            self.kind = "system"

    def __reduce__(self) -> Any:
        return (type(self), (str(self), self.code, self.run_id, self.run_page_url, self.state_message, self.error,
                             self.error_trace))


class DatabricksRunTimeoutError(DatabricksRunError, TaskTimeoutError):
    """The run passed its ``timeout_seconds`` on Databricks (result state TIMEDOUT); also a ``TimeoutError``."""


def run_error(task_name: str, run: dict[str, Any], output: dict[str, Any] | None) -> DatabricksRunError:
    """The error of a run that ended other than SUCCESS, from runs/get (``run``) and runs/get-output."""
    state = run.get("state") or {}
    life_cycle = state.get("life_cycle_state") or "UNKNOWN"
    code = state.get("result_state") if life_cycle == "TERMINATED" else life_cycle
    code = code or life_cycle
    message = state.get("state_message") or ""
    output = output or {}
    error = output.get("error") or ""
    trace = output.get("error_trace") or ""
    url = run.get("run_page_url")
    text = f"{task_name}: Databricks run {run.get('run_id')} {_WHAT.get(code, f'ended in {code}')}"
    if message:
        text += f": {message}"
    if error and error not in message:
        text += f"\nError: {error}"
    if trace:
        text += f"\nTrace (from the cluster):\n{trace.rstrip()}"
    if url:
        text += f"\nRun page: {url}"
    kind = DatabricksRunTimeoutError if code == "TIMEDOUT" else DatabricksRunError
    return kind(text, code, run.get("run_id"), url, message, error, trace)
