"""NCCL failure detection: which environment variables the workers get, and what each setting means.

Every setting left at ``None`` is not exported, so the installed torch's own default applies (the defaults change
between releases; hard-coding them here would silently override a newer torch). As of torch 2.13:

- ``nccl_heartbeat_timeout_sec`` -> ``TORCH_NCCL_HEARTBEAT_TIMEOUT_SEC`` (torch default 480): how long the
  process group's watchdog thread may go silent before the heartbeat monitor dumps state and aborts the process.
- ``nccl_async_error_handling`` -> ``TORCH_NCCL_ASYNC_ERROR_HANDLING`` (torch default 3): what a failed or
  timed-out collective does: 0 nothing, 1 abort communicators and kill the process, 2 abort and raise, 3 kill the
  process without cleanup. ``True`` means 3 and ``False`` 0.
- ``nccl_enable_monitoring`` -> ``TORCH_NCCL_ENABLE_MONITORING`` (torch default on): whether the heartbeat monitor
  runs at all.
- ``nccl_collective_timeout_sec`` -> the default timeout of ``init_process_group`` (torch default 10 minutes for
  NCCL, 30 for gloo) in every worker, applied before the user's code runs, so a hung collective fails after this
  many seconds for any backend. Exported as ``FLYTE_NCCL_COLLECTIVE_TIMEOUT_SEC`` too. An explicit ``timeout=``
  passed to ``init_process_group`` still wins.
"""

from __future__ import annotations

from typing import Any

COLLECTIVE_TIMEOUT_ENV = "FLYTE_NCCL_COLLECTIVE_TIMEOUT_SEC"


def nccl_environment(config: Any) -> dict[str, str]:
    """The variables to export to workers for ``config``'s ``nccl_*`` settings (only those that are set)."""
    env: dict[str, str] = {}
    if config.nccl_heartbeat_timeout_sec is not None:
        env["TORCH_NCCL_HEARTBEAT_TIMEOUT_SEC"] = str(int(config.nccl_heartbeat_timeout_sec))
    mode = config.nccl_async_error_handling
    if mode is not None:
        env["TORCH_NCCL_ASYNC_ERROR_HANDLING"] = str(3 if mode is True else 0 if mode is False else int(mode))
    if config.nccl_enable_monitoring is not None:
        env["TORCH_NCCL_ENABLE_MONITORING"] = "1" if config.nccl_enable_monitoring else "0"
    if config.nccl_collective_timeout_sec is not None:
        env[COLLECTIVE_TIMEOUT_ENV] = repr(float(config.nccl_collective_timeout_sec))
    return env


def apply_collective_timeout(environ: dict[str, str] | Any) -> float | None:
    """In a worker: make ``FLYTE_NCCL_COLLECTIVE_TIMEOUT_SEC`` the default process-group timeout. Imports torch."""
    raw = environ.get(COLLECTIVE_TIMEOUT_ENV)
    if not raw:
        return None
    from datetime import timedelta

    import torch.distributed.constants as constants
    import torch.distributed.distributed_c10d as c10d

    timeout = timedelta(seconds=float(raw))
    # init_process_group reads these module globals when no timeout is passed.
    c10d.default_pg_timeout = timeout  # type: ignore[attr-defined]
    constants.default_pg_timeout = timeout
    if getattr(c10d, "default_pg_nccl_timeout", None) is not None:
        c10d.default_pg_nccl_timeout = timeout  # type: ignore[attr-defined]
        constants.default_pg_nccl_timeout = timeout
    return timeout.total_seconds()
