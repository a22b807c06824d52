"""REST semantics of create/get/list/update/patch/delete (part of the Kubernetes API server test double).

Implements what the real API server does around storage: server-managed metadata (uid, resourceVersion,
creationTimestamp, generation, generateName), name validation, namespace existence, optimistic concurrency
(409 Conflict on a stale ``metadata.resourceVersion``), the status subresource split (main-resource writes keep the
stored status, ``/status`` writes change only status), per-kind defaulting (pods, jobs, secrets, namespaces),
custom resource schema validation (see :mod:`kube_double.crds`), no-op updates that do not bump resourceVersion,
and removal of a deleting object when its last finalizer is removed.

Simplifications: immutability rules (e.g. pod spec, job template) are not enforced; no admission plugins other
than the Job/Pod defaulting; managedFields are not tracked.
"""

from __future__ import annotations

import base64
import copy
import uuid

import yaml

from . import errors
from . import patch as patching
from .gc import Collector
from .names import generate_name, name_errors
from .quantities import parse_quantity
from .resources import Registry, ResourceType
from .selectors import SelectorError, fields_match, labels_match, parse_field_selector, parse_label_selector
from .store import Store

SERVER_MANAGED = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "selfLink",
    "managedFields",
)


class Api:
    def __init__(self, store: Store, registry: Registry, collector: Collector):
        self.store = store
        self.registry = registry
        self.collector = collector

    # ----- rendering
    @staticmethod
    def render(rt: ResourceType, version: str | None, obj: dict) -> dict:
        out = copy.deepcopy(obj)
        out["apiVersion"] = rt.api_version(version)
        out["kind"] = rt.kind
        return out

    # ----- reads
    def get(self, rt: ResourceType, namespace: str, name: str) -> dict:
        obj = self.store.get(rt.key, namespace if rt.namespaced else "", name)
        if obj is None:
            raise errors.not_found(rt, name)
        return obj

    def selectors(self, rt: ResourceType, label_selector: str | None, field_selector: str | None):
        try:
            return parse_label_selector(label_selector), parse_field_selector(field_selector, rt.plural)
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from None

    def list(self, rt: ResourceType, namespace: str | None, label_selector=None, field_selector=None):
        labels, fields = self.selectors(rt, label_selector, field_selector)
        with self.store.lock:
            items = [
                copy.deepcopy(o)
                for o in self.store.list(rt.key, namespace if rt.namespaced else None)
                if labels_match(labels, o["metadata"].get("labels")) and fields_match(fields, o)
            ]
            return items, str(self.store.rv)

    # ----- create
    def create(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        body,
        field_validation: str = "Strict",
        dry_run: bool = False,
    ) -> dict:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request was in an unknown format")
        obj = copy.deepcopy(body)
        self._check_type(rt, version, obj)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        for field in SERVER_MANAGED:
            meta.pop(field, None)
        if rt.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace or meta.get("namespace") or "default"
            if self.store.get("/namespaces", "", meta["namespace"]) is None:
                raise errors.namespace_not_found(meta["namespace"])
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = generate_name(meta["generateName"])
            else:
                raise errors.invalid(
                    rt,
                    "",
                    [("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")],
                )
        self._validate_meta(rt, obj)
        meta["uid"] = str(uuid.uuid4())
        if rt.has_status:
            obj.pop("status", None)
        self._default_and_validate(rt, version, obj, field_validation, creating=True)
        if self.store.get(rt.key, meta.get("namespace", ""), meta["name"]) is not None:
            raise errors.already_exists(rt, meta["name"])
        if dry_run:
            return obj
        return self.store.create(rt.key, obj)

    def _check_type(self, rt, version, obj):
        kind = obj.get("kind")
        api_version = obj.get("apiVersion")
        if kind and kind != rt.kind:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rt.api_version(version)})"
                if api_version and api_version != rt.api_version(version)
                else f"kind {kind} does not match {rt.kind}"
            )
        if api_version and api_version != rt.api_version(version):
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rt.api_version(version)})"
            )
        obj["apiVersion"] = rt.api_version()
        obj["kind"] = rt.kind

    def _validate_meta(self, rt, obj):
        meta = obj["metadata"]
        problems = name_errors(meta["name"], rt.name_rule)
        if problems:
            raise errors.invalid(
                rt,
                meta["name"],
                [("FieldValueInvalid", "metadata.name", f'Invalid value: "{meta["name"]}": {p}') for p in problems],
            )
        for field in ("labels", "annotations"):
            values = meta.get(field)
            if values is not None and (
                not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values())
            ):
                raise errors.invalid(
                    rt,
                    meta["name"],
                    [("FieldValueInvalid", f"metadata.{field}", "Invalid value: values must be strings")],
                )

    # ----- update / patch
    def update(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
        body,
        subresource=None,
        field_validation: str = "Strict",
        dry_run: bool = False,
    ) -> dict:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request was in an unknown format")
        current = self.get(rt, namespace, name)
        obj = copy.deepcopy(body)
        self._check_type(rt, version, obj)
        meta = obj.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        if meta.get("resourceVersion") and meta["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise errors.conflict(rt, name)
        return self._write(rt, version, current, obj, subresource, field_validation, dry_run)

    def _write(self, rt, version, current, obj, subresource, field_validation, dry_run):
        meta = obj.setdefault("metadata", {})
        cur_meta = current["metadata"]
        if subresource == "status":
            new = copy.deepcopy(current)
            new["status"] = obj.get("status")
            if new["status"] is None:
                new.pop("status")
        else:
            for field in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "name",
                "namespace",
            ):
                if field in cur_meta:
                    meta[field] = cur_meta[field]
                else:
                    meta.pop(field, None)
            meta.pop("generateName", None) if "generateName" not in cur_meta else meta.__setitem__(
                "generateName", cur_meta["generateName"]
            )
            if rt.has_status:
                if "status" in current:
                    obj["status"] = copy.deepcopy(current["status"])
                else:
                    obj.pop("status", None)
            self._validate_meta(rt, obj)
            self._default_and_validate(rt, version, obj, field_validation, creating=False)
            new = obj
        if rt.validators and subresource == "status":
            self._default_and_validate(rt, version, new, field_validation, creating=False)
        new["metadata"]["resourceVersion"] = cur_meta["resourceVersion"]
        if new == current:
            return current
        if dry_run:
            return new
        if cur_meta.get("deletionTimestamp"):
            added = set(new["metadata"].get("finalizers") or []) - set(cur_meta.get("finalizers") or [])
            if added:
                raise errors.invalid(
                    rt,
                    cur_meta["name"],
                    [
                        (
                            "FieldValueForbidden",
                            "metadata.finalizers",
                            "Forbidden: no new finalizers can be added if the object is being deleted",
                        )
                    ],
                )
        stored = self.store.update(rt.key, new)
        self.collector.after_update(rt.key, stored)
        return stored

    def patch(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
        content_type: str,
        raw: bytes,
        subresource=None,
        field_validation="Strict",
        dry_run=False,
    ) -> dict:
        import json

        content_type = (content_type or "").split(";")[0].strip()
        if content_type == "application/apply-patch+yaml":
            try:
                body = yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise errors.bad_request(f"error decoding YAML: {exc}") from None
            if self.store.get(rt.key, namespace if rt.namespaced else "", name) is None:
                return self.create(rt, version, namespace, body, field_validation, dry_run)
            content_type = "application/strategic-merge-patch+json" if rt.builtin else "application/merge-patch+json"
            patch_body = body
        else:
            try:
                patch_body = json.loads(raw or b"null")
            except ValueError as exc:
                raise errors.bad_request(f"error decoding patch: {exc}") from None
        current = self.get(rt, namespace, name)
        rendered = self.render(rt, version, current)
        try:
            if content_type == "application/merge-patch+json":
                patched = patching.merge_patch(rendered, patch_body)
            elif content_type == "application/strategic-merge-patch+json":
                if not rt.builtin:
                    raise errors.unsupported_media_type(content_type)
                patched = patching.strategic_merge_patch(rendered, patch_body)
            elif content_type == "application/json-patch+json":
                patched = patching.json_patch(rendered, patch_body)
            else:
                raise errors.unsupported_media_type(content_type)
        except patching.PatchError as exc:
            raise errors.ApiError(422, "Invalid", str(exc)) from None
        if not isinstance(patched, dict):
            raise errors.bad_request("patch did not produce an object")
        meta = patched.setdefault("metadata", {})
        if meta.get("resourceVersion") and meta["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise errors.conflict(rt, name)
        self._check_type(rt, version, patched)
        return self._write(rt, version, current, patched, subresource, field_validation, dry_run)

    # ----- delete
    def delete(self, rt, namespace, name, propagation=None, grace=None, preconditions=None, dry_run=False):
        if dry_run:
            return 200, self.get(rt, namespace, name), False
        return self.collector.delete(rt, namespace if rt.namespaced else "", name, propagation, grace, preconditions)

    # ----- per-kind defaulting and validation
    def _default_and_validate(self, rt, version, obj, field_validation, creating):
        name = obj["metadata"]["name"]
        if rt.validators:
            validator = rt.validators.get(version) or rt.validators.get(rt.storage_version)
            validator.default(obj)
            unknown = validator.unknown(obj)
            if unknown and field_validation in ("Ignore", "Warn"):
                validator.prune(obj)
            elif unknown:
                raise errors.invalid(
                    rt, name, [("FieldValueInvalid", path, f'unknown field "{path}"') for path in unknown]
                )
            problems = validator.errors(obj)
            if problems:
                raise errors.invalid(rt, name, [("FieldValueInvalid", f, m) for f, m in problems[:10]])
            return
        if rt.key == "/pods":
            self._default_pod_spec(rt, name, obj, "spec")
            if creating:
                obj["status"] = {"phase": "Pending", "qosClass": _qos_class(obj["spec"])}
        elif rt.key == "batch/jobs":
            self._default_job(rt, obj)
            if creating:
                obj["status"] = {}
        elif rt.key == "/secrets":
            data = obj.setdefault("data", {}) or {}
            for key, value in (obj.pop("stringData", None) or {}).items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            obj["data"] = data
            obj.setdefault("type", "Opaque")
            if not obj["data"]:
                obj.pop("data")
        elif rt.key == "/namespaces":
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            if creating:
                obj["status"] = {"phase": "Active"}

    def _default_pod_spec(self, rt, name, obj, path):
        spec = obj.setdefault("spec", {}) if path == "spec" else obj
        if not isinstance(spec, dict):
            raise errors.invalid(rt, name, [("FieldValueRequired", path, "Required value")])
        containers = spec.get("containers")
        causes = []
        if not containers:
            causes.append(("FieldValueRequired", f"{path}.containers", "Required value"))
        spec.setdefault("restartPolicy", "Always")
        if spec["restartPolicy"] not in ("Always", "OnFailure", "Never"):
            causes.append(
                (
                    "FieldValueNotSupported",
                    f"{path}.restartPolicy",
                    f'Unsupported value: "{spec["restartPolicy"]}": supported values: "Always", "OnFailure", "Never"',
                )
            )
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("securityContext", {})
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("priority", 0)
        for group in ("initContainers", "containers"):
            for index, container in enumerate(spec.get(group) or []):
                where = f"{path}.{group}[{index}]"
                if not container.get("name"):
                    causes.append(("FieldValueRequired", f"{where}.name", "Required value"))
                if not container.get("image"):
                    causes.append(("FieldValueRequired", f"{where}.image", "Required value"))
                image = str(container.get("image", ""))
                tag = image.rsplit("/", 1)[-1]
                container.setdefault(
                    "imagePullPolicy", "Always" if ":" not in tag or tag.endswith(":latest") else "IfNotPresent"
                )
                container.setdefault("terminationMessagePath", "/dev/termination-log")
                container.setdefault("terminationMessagePolicy", "File")
                resources = container.setdefault("resources", {})
                for kind in ("limits", "requests"):
                    for resource, value in (resources.get(kind) or {}).items():
                        try:
                            parse_quantity(value)
                        except ValueError as exc:
                            causes.append(
                                (
                                    "FieldValueInvalid",
                                    f"{where}.resources.{kind}[{resource}]",
                                    f'Invalid value: "{value}": {exc}',
                                )
                            )
                if resources.get("limits"):
                    requests = resources.setdefault("requests", {})
                    for resource, value in resources["limits"].items():
                        requests.setdefault(resource, value)
        if causes:
            raise errors.invalid(rt, name, causes)

    def _default_job(self, rt, obj):
        meta = obj["metadata"]
        name, uid = meta["name"], meta["uid"]
        spec = obj.setdefault("spec", {})
        if spec.get("completions") is None and spec.get("parallelism") is None:
            spec["completions"] = 1
        spec.setdefault("parallelism", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
        template = spec.setdefault("template", {})
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels.update(
            {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            }
        )
        spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
        pod_spec = template.get("spec")
        if not isinstance(pod_spec, dict):
            raise errors.invalid(rt, name, [("FieldValueRequired", "spec.template.spec", "Required value")])
        restart = pod_spec.get("restartPolicy", "Always")
        if restart not in ("Never", "OnFailure"):
            raise errors.invalid(
                rt,
                name,
                [
                    (
                        "FieldValueNotSupported",
                        "spec.template.spec.restartPolicy",
                        f'Unsupported value: "{restart}": supported values: "OnFailure", "Never"',
                    )
                ],
            )
        self._default_pod_spec(rt, name, pod_spec, "spec.template.spec")


def _qos_class(spec: dict) -> str:
    containers = spec.get("containers") or []
    any_set = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        if limits or requests:
            any_set = True
        for resource in ("cpu", "memory"):
            if resource not in limits or requests.get(resource, limits.get(resource)) != limits.get(resource):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def matches(labels_req, fields_req, obj) -> bool:
    return labels_match(labels_req, obj["metadata"].get("labels")) and fields_match(fields_req, obj)
