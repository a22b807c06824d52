"""One Databricks run, from runs/submit to a terminal state, cancelled on Databricks if the caller stops waiting.

The run is followed with runs/get: every ``FLYTE_DATABRICKS_POLL_INTERVAL`` seconds (default 1) at first, the pause
growing by half each time up to ten times that (at most 10 s), and back to the start on each change of state.
Its ``run_page_url`` is shown in the run's progress as soon as it is known. If the wait ends early (the task's
timeout, a cancellation, Ctrl-C, a failing sibling), runs/cancel is sent, shielded, and the run followed until it
has ended (within ``CANCEL_DEADLINE_S``), so nothing keeps running on the workspace for a call that is over.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio

from ._databricks_client import DatabricksClient
from ._databricks_errors import TERMINAL_LIFE_CYCLES

log = logging.getLogger("flyteplugins.spark.databricks")

POLL_ENV = "FLYTE_DATABRICKS_POLL_INTERVAL"
CANCEL_DEADLINE_S = 60.0


@dataclass(frozen=True)
class PollPolicy:
    first_s: float = 1.0
    growth: float = 1.5
    max_s: float = 10.0

    @classmethod
    def from_env(cls) -> PollPolicy:
        raw = os.environ.get(POLL_ENV, "").strip()
        if not raw:
            return cls()
        try:
            first = float(raw)
        except ValueError:
            raise ValueError(f"{POLL_ENV}: {raw!r} is not a number of seconds") from None
        if first <= 0:
            raise ValueError(f"{POLL_ENV}: {raw!r}; expected seconds > 0")
        return cls(first_s=first, max_s=min(10.0, first * 10))


def is_terminal(run: dict[str, Any]) -> bool:
    return (run.get("state") or {}).get("life_cycle_state") in TERMINAL_LIFE_CYCLES


def succeeded(run: dict[str, Any]) -> bool:
    state = run.get("state") or {}
    return state.get("life_cycle_state") == "TERMINATED" and state.get("result_state") == "SUCCESS"


def task_run_id(run: dict[str, Any]) -> int:
    """The run id of the run's one task (runs/get-output takes a task's run, not a multi-task parent's)."""
    tasks = run.get("tasks") or []
    return int(tasks[0]["run_id"]) if tasks and tasks[0].get("run_id") is not None else int(run["run_id"])


def describe(run: dict[str, Any]) -> str:
    state = run.get("state") or {}
    text = state.get("life_cycle_state") or "?"
    if state.get("result_state"):
        text += f"/{state['result_state']}"
    if state.get("state_message"):
        text += f": {state['state_message']}"
    return text


async def submit_and_wait(client: DatabricksClient, request: dict[str, Any], *, label: str,
                          on_page: Callable[[str], None], poll: PollPolicy | None = None) -> dict[str, Any]:
    """Submit ``request`` and return the run (runs/get) once it is terminal. ``on_page`` gets its page's URL."""
    poll = poll or PollPolicy.from_env()
    run_id: int | None = None
    try:
        run_id = await client.submit(request)
        log.info("%s: Databricks run %s submitted", label, run_id)
        interval = poll.first_s
        seen: str | None = None
        page_shown = False
        while True:
            run = await client.get_run(run_id)
            if not page_shown and run.get("run_page_url"):
                on_page(run["run_page_url"])
                page_shown = True
            now = describe(run)
            if now != seen:
                log.info("%s: Databricks run %s %s", label, run_id, now)
                seen = now
                interval = poll.first_s
            if is_terminal(run):
                return run
            await anyio.sleep(interval)
            interval = min(poll.max_s, interval * poll.growth)
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            if run_id is None and not isinstance(exc, Exception):
                # Stopped while runs/submit was in flight: the run may exist. Its idempotency token names it (or
                # starts it, to be cancelled at once): nothing is left running either way.
                run_id = await _resubmit(client, request, label)
            if run_id is not None:
                await cancel_and_wait(client, run_id, label, poll)
        raise


async def _resubmit(client: DatabricksClient, request: dict[str, Any], label: str) -> int | None:
    with anyio.move_on_after(CANCEL_DEADLINE_S):
        try:
            return await client.submit(request)
        except Exception as exc:  # noqa: BLE001 - best effort, the interruption is what the caller reports
            log.warning("%s: could not find the Databricks run of an interrupted runs/submit (%s)", label, exc)
    return None


async def cancel_and_wait(client: DatabricksClient, run_id: int, label: str, poll: PollPolicy) -> None:
    """runs/cancel, then wait (at most ``CANCEL_DEADLINE_S``) for the run to have ended; never raises."""
    deadline = time.monotonic() + CANCEL_DEADLINE_S
    with anyio.move_on_after(CANCEL_DEADLINE_S):
        try:
            run = await client.get_run(run_id)
            if is_terminal(run):
                return
            await client.cancel(run_id)
            log.info("%s: Databricks run %s cancelled", label, run_id)
            interval = min(poll.first_s, 1.0)
            while time.monotonic() < deadline:
                run = await client.get_run(run_id)
                if is_terminal(run):
                    return
                await anyio.sleep(interval)
                interval = min(poll.max_s, interval * poll.growth)
        except Exception as exc:  # noqa: BLE001 - the caller's own error matters more; say what was left
            log.warning("%s: could not cancel Databricks run %s (%s); cancel it on its page", label, run_id, exc)
            return
    if time.monotonic() >= deadline:
        log.warning("%s: Databricks run %s had not ended %gs after runs/cancel", label, run_id, CANCEL_DEADLINE_S)
