"""Server-side printing for ``kubectl get`` (part of the Kubernetes API server test double).

When a client asks for ``application/json;as=Table;g=meta.k8s.io;v=v1`` the real API server answers a
``meta.k8s.io/v1 Table``. This module produces one: NAME/READY/STATUS/RESTARTS/AGE for pods,
NAME/STATUS/COMPLETIONS/DURATION/AGE for jobs, LAST SEEN/TYPE/REASON/OBJECT/MESSAGE for events, the CRD's additionalPrinterColumns (simple JSONPath: dotted
fields, ``[n]`` and ``[?(@.k=="v")]``) for custom resources, NAME/AGE otherwise.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone


def wants_table(request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _age(stamp: str | None) -> str:
    if not stamp:
        return "<unknown>"
    then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    seconds = int((datetime.now(timezone.utc) - then).total_seconds())
    if seconds < 120:
        return f"{max(seconds, 0)}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60}s" if seconds < 600 else f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{(seconds % 3600) // 60}m"
    return f"{seconds // 86400}d"


def jsonpath(obj, path: str):
    current = [obj]
    for token in re.findall(r"\[\?\(@\.[^)]*\)\]|\[\d+\]|[^.\[\]]+", path.strip().lstrip(".")):
        nxt = []
        for value in current:
            if token.startswith("[?("):
                match = re.match(r'\[\?\(@\.([\w.]+)\s*==\s*["\']?([^"\']*)["\']?\)\]', token)
                if match and isinstance(value, list):
                    nxt += [v for v in value if isinstance(v, dict) and str(v.get(match.group(1))) == match.group(2)]
            elif token.startswith("["):
                if isinstance(value, list) and int(token[1:-1]) < len(value):
                    nxt.append(value[int(token[1:-1])])
            elif isinstance(value, dict) and token in value:
                nxt.append(value[token])
        current = nxt
    if not current:
        return None
    return current[0] if len(current) == 1 else ",".join(str(v) for v in current)


def _pod_row(obj):
    status = obj.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    reason = status.get("reason") or status.get("phase", "Pending")
    for s in statuses:
        state = s.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state and state["terminated"].get("reason"):
            reason = state["terminated"]["reason"]
    if obj["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    total = len((obj.get("spec") or {}).get("containers") or [])
    return [
        f"{ready}/{total}",
        reason,
        restarts,
        _age(obj["metadata"].get("creationTimestamp")),
        status.get("podIP", "<none>"),
        (obj.get("spec") or {}).get("nodeName", "<none>"),
    ]


def _job_row(obj):
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    conditions = {c["type"]: c for c in status.get("conditions") or [] if c.get("status") == "True"}
    state = "Complete" if "Complete" in conditions else "Failed" if "Failed" in conditions else "Running"
    duration = ""
    if status.get("startTime"):
        duration = _age(status["startTime"])
    return [
        state,
        f"{status.get('succeeded', 0)}/{spec.get('completions', 1)}",
        duration,
        _age(obj["metadata"].get("creationTimestamp")),
    ]


def table(rt, version, items, rv, request) -> dict:
    name_col = {"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}
    if rt.key == "/pods":
        columns = [name_col] + [
            {"name": n, "type": t, "format": "", "description": n, "priority": p}
            for n, t, p in (
                ("Ready", "string", 0),
                ("Status", "string", 0),
                ("Restarts", "string", 0),
                ("Age", "string", 0),
                ("IP", "string", 1),
                ("Node", "string", 1),
            )
        ]
        rows = [[o["metadata"]["name"]] + _pod_row(o) for o in items]
    elif rt.key == "batch/jobs":
        columns = [name_col] + [
            {"name": n, "type": "string", "format": "", "description": n, "priority": 0}
            for n in ("Status", "Completions", "Duration", "Age")
        ]
        rows = [[o["metadata"]["name"]] + _job_row(o) for o in items]
    elif rt.key == "/events":
        columns = [
            {"name": n, "type": "string", "format": "", "description": n, "priority": 0}
            for n in ("Last Seen", "Type", "Reason", "Object", "Message")
        ]
        rows = [
            [
                _age(o.get("lastTimestamp") or o["metadata"].get("creationTimestamp")),
                o.get("type", ""),
                o.get("reason", ""),
                f"{o['involvedObject'].get('kind', '').lower()}/{o['involvedObject'].get('name')}",
                o.get("message", ""),
            ]
            for o in items
        ]
    elif rt.printer_columns.get(version):
        declared = rt.printer_columns[version]
        columns = [name_col] + [
            {
                "name": c["name"],
                "type": c.get("type", "string"),
                "format": c.get("format", ""),
                "description": c.get("description", ""),
                "priority": c.get("priority", 0),
            }
            for c in declared
        ]
        rows = []
        for o in items:
            row = [o["metadata"]["name"]]
            for c in declared:
                value = jsonpath(o, c["jsonPath"])
                if c.get("type") == "date" and isinstance(value, str):
                    value = _age(value)
                row.append(value)
            rows.append(row)
    else:
        columns = [name_col, {"name": "Age", "type": "string", "format": "", "description": "Age", "priority": 0}]
        rows = [[o["metadata"]["name"], _age(o["metadata"].get("creationTimestamp"))] for o in items]
    include = request.query.get("includeObject", "PartialObjectMetadata")
    out_rows = []
    for obj, cells in zip(items, rows, strict=True):
        if include == "Object":
            embedded = obj
        elif include == "None":
            embedded = None
        else:
            embedded = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}
        out_rows.append({"cells": cells, "object": embedded})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": columns,
        "rows": out_rows,
    }
