"""PATCH bodies (part of the Kubernetes API server test double).

* ``application/merge-patch+json``: RFC 7386 JSON merge patch (null deletes, objects merge, lists replace).
* ``application/strategic-merge-patch+json``: the Kubernetes strategic merge patch for built-in kinds: lists with a
  documented ``patchMergeKey`` (containers/initContainers/volumes/env/imagePullSecrets by ``name``, volumeMounts by
  ``mountPath``, container ports by ``containerPort``, service ports by ``port``, ownerReferences by ``uid``,
  conditions by ``type``, ...) are merged element by element; ``finalizers`` merge as a set; the directives
  ``$patch: replace|delete|merge``, ``$deleteFromPrimitiveList/<f>``, ``$setElementOrder/<f>`` and ``$retainKeys``
  are understood (ordering and retainKeys are accepted and ignored). The server rejects it for custom resources (415).
* ``application/json-patch+json``: RFC 6902 (add, remove, replace, move, copy, test).
"""

from __future__ import annotations

import copy


class PatchError(ValueError):
    pass


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "resourceClaims": "name",
    "schedulingGates": "name",
    "addresses": "type",
    "topologySpreadConstraints": "topologyKey",
}
PRIMITIVE_MERGE_LISTS = {"finalizers"}


def _merge_key(field: str, items: list) -> str | None:
    if field == "ports":
        sample = next((i for i in items if isinstance(i, dict)), {})
        return "containerPort" if "containerPort" in sample else "port"
    return MERGE_KEYS.get(field)


def strategic_merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in (value or [])]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_list(field: str, current, patch_items: list):
    current = copy.deepcopy(current) if isinstance(current, list) else []
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch_items):
        return [copy.deepcopy(i) for i in patch_items if not (isinstance(i, dict) and "$patch" in i)]
    if field in PRIMITIVE_MERGE_LISTS:
        for item in patch_items:
            if item not in current:
                current.append(item)
        return current
    key = _merge_key(field, patch_items + current)
    if not key or not all(isinstance(i, dict) for i in patch_items):
        return copy.deepcopy(patch_items)
    for item in patch_items:
        index = next((n for n, c in enumerate(current) if isinstance(c, dict) and c.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if index is not None:
                current.pop(index)
            continue
        if index is None:
            current.append(strategic_merge_patch({}, item))
        else:
            current[index] = strategic_merge_patch(current[index], item)
    return current


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve(doc, parts):
    for part in parts:
        if isinstance(doc, list):
            doc = doc[int(part)]
        elif isinstance(doc, dict):
            doc = doc[part]
        else:
            raise KeyError(part)
    return doc


def json_patch(target, operations):
    if not isinstance(operations, list):
        raise PatchError("json patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        kind = op.get("op")
        try:
            parts = _pointer(op.get("path", ""))
            if kind == "test":
                if _resolve(doc, parts) != op.get("value"):
                    raise PatchError(f"testing value {op.get('path')} failed")
                continue
            if kind in ("move", "copy"):
                value = copy.deepcopy(_resolve(doc, _pointer(op["from"])))
                if kind == "move":
                    doc = _remove(doc, _pointer(op["from"]))
                doc = _add(doc, parts, value)
            elif kind == "add":
                doc = _add(doc, parts, copy.deepcopy(op.get("value")))
            elif kind == "remove":
                doc = _remove(doc, parts)
            elif kind == "replace":
                _resolve(doc, parts)  # must exist
                doc = _remove(doc, parts)
                doc = _add(doc, parts, copy.deepcopy(op.get("value")))
            else:
                raise PatchError(f"Unexpected kind: {kind}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            if isinstance(exc, PatchError):
                raise
            raise PatchError(
                f"the server rejected our request due to an error in our request: {kind} operation "
                f"does not apply: doc is missing path: {op.get('path')!r}"
            ) from None
    return doc


def _add(doc, parts, value):
    if not parts:
        return value
    parent = _resolve(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            index = int(last)
            if index > len(parent):
                raise IndexError(index)
            parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise KeyError(last)
    return doc


def _remove(doc, parts):
    parent = _resolve(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        parent.pop(int(last))
    else:
        del parent[last]
    return doc
