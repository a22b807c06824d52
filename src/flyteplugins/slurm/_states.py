"""A job's state as Slurm reports it, read from ``squeue --json``, ``scontrol show job -o`` or ``sacct``.

Slurm's versions differ: 22.05 prints ``job_state`` as a string and ``exit_code`` as a wait status (``768`` for exit
code 3) and ignores ``--jobs`` with ``--json``; 23.11 and later print a list of states and an ``exit_code`` object.
``scontrol`` has no ``--json`` before 23.02, but its one-line form (``ExitCode=3:0``) is stable.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

# States of a job that has not ended (COMPLETING too: its processes are being cleaned up).
ACTIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_FED",
                    "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "POWER_UP_NODE",
                    "RESV_DEL_HOLD", "UPDATE_DB"})
FINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
                   "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED"})
_NOT_STARTED = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "POWER_UP_NODE",
                          "RESV_DEL_HOLD"})
_KEY = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/]*)=")


@dataclass(frozen=True)
class JobStatus:
    """One look at a job: its base ``state`` (RUNNING, FAILED...), extra ``flags`` (COMPLETING...), ``exit_code``
    and ``signal`` once known, Slurm's ``reason`` and the ``nodes`` it ran on."""

    job_id: str
    state: str
    flags: frozenset[str] = field(default_factory=frozenset)
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""
    nodes: str = ""
    source: str = ""

    @property
    def finished(self) -> bool:
        return self.state in FINAL and not (self.flags & ACTIVE)

    @property
    def started(self) -> bool:
        return self.state not in _NOT_STARTED

    @property
    def succeeded(self) -> bool:
        return self.finished and self.state == "COMPLETED" and not self.exit_code and not self.signal


def _number(value: Any) -> int | None:
    """An int from Slurm's JSON: a plain number, or (23.x) ``{"set": true, "number": 3}``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        if value.get("set") is False:
            return None
        for key in ("number", "id"):
            if key in value:
                return _number(value[key])
    return None


def _states(value: Any) -> tuple[str, frozenset[str]]:
    if isinstance(value, str):
        parts = value.split()
        names = [parts[0]] if parts else []
    else:
        names = [str(item) for item in value or []]
    names = [name.upper() for name in names]
    if not names:
        return "UNKNOWN", frozenset()
    return names[0], frozenset(names[1:])


def _exit(value: Any) -> tuple[int | None, int | None]:
    """(exit code, signal) from a JSON ``exit_code``: a wait status (22.05) or an object (23.x)."""
    if isinstance(value, dict):
        code = _number(value.get("return_code"))
        signal = _number((value.get("signal") or {}).get("id") if isinstance(value.get("signal"), dict)
                         else value.get("signal"))
        return code, signal or None
    status = _number(value)
    if status is None:
        return None, None
    if status & 0x7F:
        return None, status & 0x7F
    return (status >> 8) & 0xFF, None


def from_squeue_json(text: str, job_id: str) -> JobStatus | None:
    """The job in ``squeue --json``'s output (which lists others too before 23.02), or None."""
    document = json.loads(text)
    for job in document.get("jobs") or []:
        if str(_number(job.get("job_id")) if not isinstance(job.get("job_id"), str) else job.get("job_id")) != job_id:
            continue
        state, flags = _states(job.get("job_state"))
        code, signal = _exit(job.get("exit_code"))
        nodes = job.get("nodes") or ""
        return JobStatus(job_id, state, flags, code, signal, str(job.get("state_reason") or ""),
                         nodes if isinstance(nodes, str) else "", "squeue")
    return None


def parse_scontrol(text: str) -> dict[str, str]:
    """``scontrol show job -o``'s ``Key=value`` line as a dict (values may hold spaces)."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    matches = list(_KEY.finditer(line))
    record: dict[str, str] = {}
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(line)
        record[match.group(1)] = line[match.end():end].strip()
    return record


def _colon_exit(value: str) -> tuple[int | None, int | None]:
    """``3:0`` -> (3, None); ``0:15`` -> (0, 15)."""
    code, _, signal = value.partition(":")
    try:
        return int(code), (int(signal) or None) if signal else None
    except ValueError:
        return None, None


def from_scontrol(text: str, job_id: str) -> JobStatus | None:
    record = parse_scontrol(text)
    if record.get("JobId") != job_id or "JobState" not in record:
        return None
    state, flags = _states(record["JobState"])
    code, signal = _colon_exit(record.get("ExitCode", ""))
    nodes = record.get("NodeList", "")
    return JobStatus(job_id, state, flags, code, signal, record.get("Reason", ""),
                     "" if nodes == "(null)" else nodes, "scontrol")


def from_sacct(text: str, job_id: str) -> JobStatus | None:
    """``sacct -X -n -P -o JobID,State,ExitCode,NodeList -j ID``'s line for the job."""
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) >= 3 and parts[0] == job_id:
            state, flags = _states(parts[1])
            code, signal = _colon_exit(parts[2])
            return JobStatus(job_id, state, flags, code, signal, "", parts[3] if len(parts) > 3 else "", "sacct")
    return None
