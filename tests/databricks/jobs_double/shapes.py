"""The documented shapes of the Jobs API, as the official ``databricks-sdk`` data classes define them.

A value has the shape of a class when ``cls.from_dict(value).as_dict() == value``: ``from_dict`` drops unknown keys
and unknown enum values, so any key, nesting or state name the class does not know shows up as a difference (empty
lists and objects count as absent: ``as_dict`` leaves them out). Used by
the double on every response it sends and on every runs/submit request it gets, and by its tests.
"""

from __future__ import annotations

import inspect
from typing import Any

from databricks.sdk.service import files, jobs

# runs/submit's request fields: the keyword arguments of the SDK's JobsAPI.submit.
SUBMIT_FIELDS = frozenset(name for name in inspect.signature(jobs.JobsAPI.submit).parameters if name != "self")


def without_empty(value: Any) -> Any:
    """``value`` without empty lists and objects, which ``as_dict`` leaves out (they mean the same as absent)."""
    if isinstance(value, dict):
        return {k: without_empty(v) for k, v in value.items() if not (isinstance(v, (list, dict)) and not v)}
    if isinstance(value, list):
        return [without_empty(v) for v in value]
    return value


def difference(cls: type, value: dict[str, Any]) -> str | None:
    """None when ``value`` has the shape of ``cls``, else what differs."""
    value = without_empty(value)
    try:
        again = cls.from_dict(value).as_dict()  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - a value from_dict cannot even read
        return f"{cls.__name__}.from_dict failed: {type(exc).__name__}: {exc}"
    if again == value:
        return None
    return f"{cls.__name__}: {_diff(value, again)}"


def _diff(given: Any, kept: Any, path: str = "") -> str:
    if isinstance(given, dict) and isinstance(kept, dict):
        for key in given:
            if key not in kept:
                return f"{path}.{key} is not a field (or its value {given[key]!r} is not allowed)"
            if given[key] != kept[key]:
                return _diff(given[key], kept[key], f"{path}.{key}")
        extra = set(kept) - set(given)
        return f"{path}: gained {sorted(extra)}"
    if isinstance(given, list) and isinstance(kept, list) and len(given) == len(kept):
        for index, (a, b) in enumerate(zip(given, kept, strict=True)):
            if a != b:
                return _diff(a, b, f"{path}[{index}]")
    return f"{path}: {given!r} became {kept!r}"


def check_response(endpoint: str, body: dict[str, Any]) -> str | None:
    """The response of ``endpoint`` has the SDK's shape (None) or what is wrong."""
    if endpoint == "runs/submit":
        return difference(jobs.SubmitRunResponse, body)
    if endpoint == "runs/get":
        return difference(jobs.Run, body)
    if endpoint == "runs/get-output":
        return difference(jobs.RunOutput, body)
    if endpoint == "fs/directories":
        return difference(files.ListDirectoryResponse, body)
    if endpoint == "runs/cancel":
        return None if body == {} else f"runs/cancel answers {{}}, not {body!r}"
    if "error_code" in body:  # an error answer: {"error_code": ..., "message": ...}
        return None if set(body) == {"error_code", "message"} else f"error body {body!r}"
    return f"unknown endpoint {endpoint}"


def check_submit(request: dict[str, Any]) -> str | None:
    """A runs/submit request has the documented 2.1 shape (None) or what is wrong."""
    unknown = set(request) - SUBMIT_FIELDS
    if unknown:
        return f"unknown runs/submit field(s) {sorted(unknown)}; allowed: {sorted(SUBMIT_FIELDS)}"
    tasks = request.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        return "runs/submit: 'tasks' (a list of tasks) is required"
    for index, task in enumerate(tasks):
        if not isinstance(task, dict):
            return f"tasks[{index}] is not an object"
        problem = difference(jobs.SubmitTask, task)
        if problem:
            return f"tasks[{index}]: {problem}"
    return None
