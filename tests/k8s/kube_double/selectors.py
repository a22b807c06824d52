"""Label and field selectors (part of the Kubernetes API server test double).

Label selectors follow the documented string syntax: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``,
``k`` (exists) and ``!k`` (does not exist), comma separated (AND). Field selectors support ``=``, ``==`` and ``!=`` on
the fields the real API server supports for each kind (``metadata.name``/``metadata.namespace`` everywhere, a few
more for pods, events, secrets, jobs); an unsupported field is a 400 BadRequest as on the real server.
"""

from __future__ import annotations

import re


class SelectorError(ValueError):
    pass


_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_.-]*)\s*$")


def _split_top(text: str) -> list[str]:
    """Split at commas that are not inside parentheses."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def parse_label_selector(text: str | None) -> list[tuple[str, str, list[str]]]:
    """Parse into (key, op, values) requirements; op in =, !=, in, notin, exists, !exists."""
    requirements = []
    for part in _split_top(text or ""):
        match = _EQ_RE.match(part)
        if match:
            key, op, value = match.groups()
            requirements.append((key, "!=" if op == "!=" else "=", [value]))
            continue
        match = _SET_RE.match(part)
        if not match:
            raise SelectorError(f"unable to parse requirement: {part.strip()!r}")
        negate, key, op, values = match.groups()
        if op:
            if negate:
                raise SelectorError(f"unable to parse requirement: {part.strip()!r}")
            requirements.append((key, op, [v.strip() for v in values.split(",") if v.strip()]))
        else:
            requirements.append((key, "!exists" if negate else "exists", []))
    return requirements


def labels_match(requirements, labels: dict | None) -> bool:
    labels = labels or {}
    for key, op, values in requirements:
        present = key in labels
        value = labels.get(key)
        if op == "=" and (not present or value != values[0]):
            return False
        if op == "!=" and present and value == values[0]:
            return False
        if op == "in" and (not present or value not in values):
            return False
        if op == "notin" and present and value in values:
            return False
        if op == "exists" and not present:
            return False
        if op == "!exists" and present:
            return False
    return True


def label_selector_object_match(selector: dict | None, labels: dict | None) -> bool:
    """Match a metav1.LabelSelector object (matchLabels / matchExpressions)."""
    if not selector:
        return True
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        op = expr.get("operator")
        key = expr.get("key")
        values = expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


_COMMON_FIELDS = {"metadata.name", "metadata.namespace"}
SUPPORTED_FIELDS = {
    "pods": {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    },
    "events": {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
    "secrets": {"type"},
    "jobs": {"status.successful"},
    "namespaces": {"status.phase"},
    "nodes": {"spec.unschedulable"},
}


def parse_field_selector(text: str | None, resource: str) -> list[tuple[str, str, str]]:
    requirements = []
    allowed = _COMMON_FIELDS | SUPPORTED_FIELDS.get(resource, set())
    for part in _split_top(text or ""):
        match = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*?)\s*$", part)
        if not match:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = match.groups()
        if field not in allowed:
            raise SelectorError(f"field label not supported: {field}")
        requirements.append((field, "!=" if op == "!=" else "=", value))
    return requirements


def _field_value(obj: dict, field: str) -> str:
    if field == "source":
        return ((obj.get("source") or {}).get("component")) or ""
    if field == "status.successful":
        return str((obj.get("status") or {}).get("succeeded", 0))
    current = obj
    for part in field.split("."):
        if not isinstance(current, dict):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def fields_match(requirements, obj: dict) -> bool:
    for field, op, value in requirements:
        actual = _field_value(obj, field)
        if op == "=" and actual != value:
            return False
        if op == "!=" and actual == value:
            return False
    return True
