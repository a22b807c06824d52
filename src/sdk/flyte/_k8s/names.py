"""Names and labels of the objects a remote run creates: DNS-1035 safe, deterministic (the same call gets the same
name, which is what makes a create idempotent and a crashed controller able to adopt its objects), and within each
kind's length limit, with a hash suffix when a name had to be cut or changed."""

from __future__ import annotations

import hashlib
import re

JOB_NAME_LIMIT = 63  # a Job's name becomes its pods' job-name label value
_INVALID = re.compile(r"[^a-z0-9-]+")
_LABEL_INVALID = re.compile(r"[^A-Za-z0-9_.-]+")

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "flyte-sdk"
RUN_LABEL = "flyte.org/run"
ACTION_LABEL = "flyte.org/action"
TASK_LABEL = "flyte.org/task"
ATTEMPT_LABEL = "flyte.org/attempt"
ROOT_LABEL = "flyte.org/root"
PRIMARY_LABEL = "flyte.org/primary"


def _digest(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def dns1035(text: str, limit: int = JOB_NAME_LIMIT) -> str:
    """``text`` as a DNS-1035 label of at most ``limit`` characters: lower-case letters, digits and '-', starting
    with a letter, ending with a letter or digit. Unchanged when it already is one; otherwise (or when too long) the
    cleaned name is cut and ends with a hash of the original, so two different texts do not meet."""
    cleaned = _INVALID.sub("-", text.lower()).strip("-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = "f-" + cleaned
    cleaned = re.sub(r"-{2,}", "-", cleaned)
    if cleaned == text and len(cleaned) <= limit:
        return cleaned
    suffix = _digest(text)
    head = cleaned[: limit - len(suffix) - 1].rstrip("-")
    return f"{head}-{suffix}"


def label_value(text: str) -> str:
    """``text`` as a label value (at most 63 of ``[A-Za-z0-9_.-]``, alphanumeric at both ends)."""
    if len(text) <= 63 and re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", text):
        return text
    cleaned = _LABEL_INVALID.sub("-", text).strip("-_.")
    suffix = _digest(text)
    return f"{cleaned[: 63 - len(suffix) - 1].rstrip('-_.')}-{suffix}".lstrip("-_.")


def object_name(run: str, action: str, attempt: int, limit: int = JOB_NAME_LIMIT) -> str:
    """The name of the object of ``attempt`` of ``action`` in ``run``."""
    return dns1035(f"{run}-{action}-{attempt}", limit)


def call_labels(run: str, action: str, task: str, attempt: int, root: bool) -> dict[str, str]:
    labels = {MANAGED_BY: MANAGER, RUN_LABEL: label_value(run), ACTION_LABEL: label_value(action),
              TASK_LABEL: label_value(task), ATTEMPT_LABEL: str(attempt)}
    if root:
        labels[ROOT_LABEL] = "true"
    return labels
