"""CustomResourceDefinitions (part of the Kubernetes API server test double).

Loads every ``kind: CustomResourceDefinition`` document from the ``*.yaml`` files under a directory (recursively) and
turns each into a served :class:`~kube_double.resources.ResourceType`: every served version, scope from
``spec.scope``, the ``status``/``scale`` subresources when declared, names/short names/categories and
additionalPrinterColumns. Two files defining the same CRD name contribute their versions to one resource.

Custom resources are validated as the real API server does with the version's ``openAPIV3Schema``:

* defaults (``default:``) are applied first;
* unknown fields are rejected (strict field validation: ``unknown field "spec.foo"``) except below
  ``x-kubernetes-preserve-unknown-fields: true`` or in the apiVersion/kind/metadata of an
  ``x-kubernetes-embedded-resource``;
* the rest is checked with ``jsonschema`` (Draft 4, which matches OpenAPI v3.0's boolean ``exclusiveMinimum``)
  after mapping the structural schema: ``nullable`` -> ``[type, "null"]``, ``x-kubernetes-int-or-string`` ->
  ``anyOf integer|string``, ``format`` ignored, patterns Python's ``re`` cannot compile dropped.

Simplifications: no CEL (``x-kubernetes-validations``), no list-type/map-type uniqueness checks, no conversion
webhooks, and the CRDs themselves are not served under apiextensions.k8s.io.
"""

from __future__ import annotations

import copy
import os
import re

import jsonschema
import yaml

from .resources import ResourceType

_FILE_CACHE: dict[tuple[str, float], list[dict]] = {}


def _load_file(path: str) -> list[dict]:
    key = (path, os.path.getmtime(path))
    if key not in _FILE_CACHE:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        if "CustomResourceDefinition" not in text:
            docs = []
        else:
            docs = [
                d
                for d in yaml.load_all(text, Loader=loader)
                if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"
            ]
        _FILE_CACHE[key] = docs
    return _FILE_CACHE[key]


def load_crds(directory: str) -> list[ResourceType]:
    types: dict[str, ResourceType] = {}
    for root, _, files in sorted(os.walk(directory)):
        for name in sorted(files):
            if name.endswith((".yaml", ".yml")):
                for doc in _load_file(os.path.join(root, name)):
                    rt = crd_to_type(doc)
                    if rt is None:
                        continue
                    if rt.key in types:
                        existing = types[rt.key]
                        for version in rt.versions:
                            if version not in existing.versions:
                                existing.versions.append(version)
                        existing.validators.update(
                            {k: v for k, v in rt.validators.items() if k not in existing.validators}
                        )
                        existing.printer_columns.update(rt.printer_columns)
                        for sub in rt.subresources:
                            if sub not in existing.subresources:
                                existing.subresources.append(sub)
                    else:
                        types[rt.key] = rt
    return list(types.values())


def crd_to_type(doc: dict) -> ResourceType | None:
    spec = doc.get("spec") or {}
    names = spec.get("names") or {}
    versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
    if not versions or not names.get("plural"):
        return None
    versions.sort(key=lambda v: not v.get("storage", False))
    subresources = []
    validators = {}
    columns = {}
    for version in versions:
        subs = version.get("subresources") or spec.get("subresources") or {}
        for sub in ("status", "scale"):
            if sub in subs and sub not in subresources:
                subresources.append(sub)
        schema = ((version.get("schema") or spec.get("validation") or {}).get("openAPIV3Schema")) or {}
        validators[version["name"]] = SchemaValidator(schema, names["kind"], spec["group"])
        columns[version["name"]] = version.get("additionalPrinterColumns") or []
    return ResourceType(
        group=spec["group"],
        versions=[v["name"] for v in versions],
        plural=names["plural"],
        singular=names.get("singular") or names["kind"].lower(),
        kind=names["kind"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        short_names=list(names.get("shortNames") or []),
        subresources=subresources,
        builtin=False,
        categories=list(names.get("categories") or []),
        validators=validators,
        printer_columns=columns,
        list_kind=names.get("listKind") or names["kind"] + "List",
    )


_KEYWORDS = (
    "enum",
    "required",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "multipleOf",
)


def to_jsonschema(schema: dict) -> dict:
    out: dict = {}
    if schema.get("x-kubernetes-int-or-string"):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    elif schema.get("type"):
        out["type"] = [schema["type"], "null"] if schema.get("nullable") else schema["type"]
    for keyword in _KEYWORDS:
        if keyword in schema:
            out[keyword] = copy.deepcopy(schema[keyword])
    if "enum" in out and schema.get("nullable"):
        out["enum"] = out["enum"] + [None]
    if "pattern" in schema:
        try:
            re.compile(schema["pattern"])
            out["pattern"] = schema["pattern"]
        except re.error:
            pass
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: to_jsonschema(v) for k, v in schema["properties"].items()}
    if isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = to_jsonschema(schema["additionalProperties"])
    if isinstance(schema.get("items"), dict):
        out["items"] = to_jsonschema(schema["items"])
    for keyword in ("allOf", "anyOf", "oneOf"):
        if keyword in schema and "anyOf" not in out:
            out[keyword] = [to_jsonschema(s) for s in schema[keyword]]
    if "not" in schema:
        out["not"] = to_jsonschema(schema["not"])
    return out


def apply_defaults(value, schema: dict):
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                apply_defaults(value[key], sub)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for key in value:
                if key not in (schema.get("properties") or {}):
                    apply_defaults(value[key], additional)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(item, schema["items"])


def unknown_fields(value, schema: dict, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(value, dict):
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields")
        embedded = schema.get("x-kubernetes-embedded-resource")
        for key, item in value.items():
            child = f"{path}.{key}" if path else key
            if key == "metadata" and (not path or embedded):
                continue  # ObjectMeta is validated by the API server itself
            if properties and key in properties:
                found += unknown_fields(item, properties[key], child)
            elif isinstance(additional, dict):
                found += unknown_fields(item, additional, child)
            elif additional is True or preserve or (embedded and key in ("apiVersion", "kind", "metadata")):
                continue
            elif not path and key in ("apiVersion", "kind", "metadata"):
                continue
            else:
                found.append(child)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            found += unknown_fields(item, schema["items"], f"{path}[{index}]")
    return found


class SchemaValidator:
    def __init__(self, schema: dict, kind: str, group: str):
        self.schema = schema
        self.kind = kind
        self.group = group
        self._validator = None

    def _compiled(self):
        if self._validator is None:
            root = to_jsonschema(self.schema)
            (root.get("properties") or {}).pop("metadata", None)
            if "metadata" in (root.get("required") or []):  # metadata is validated by the server itself
                root["required"] = [r for r in root["required"] if r != "metadata"]
            self._validator = jsonschema.Draft4Validator(root)
        return self._validator

    def default(self, obj: dict) -> None:
        apply_defaults(obj, self.schema)

    def unknown(self, obj: dict) -> list[str]:
        return unknown_fields(obj, self.schema)

    def prune(self, obj: dict) -> None:
        for path in self.unknown(obj):
            _delete_path(obj, path)

    def errors(self, obj: dict) -> list[tuple[str, str]]:
        """(field path, message) pairs."""
        body = {k: v for k, v in obj.items() if k != "metadata"}
        out = []
        for error in sorted(self._compiled().iter_errors(body), key=lambda e: list(e.absolute_path)):
            field = ""
            for part in error.absolute_path:
                field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
            out.append((field or "<root>", error.message))
        return out


def _delete_path(obj, path: str) -> None:
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    current = obj
    for part in parts[:-1]:
        current = current[int(part[1:-1])] if part.startswith("[") else current.get(part)
        if current is None:
            return
    last = parts[-1]
    if isinstance(current, dict):
        current.pop(last, None)
