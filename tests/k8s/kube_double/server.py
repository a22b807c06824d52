"""HTTP front end (part of the Kubernetes API server test double).

An aiohttp application that routes the Kubernetes REST paths
(``/api/v1[/namespaces/{ns}]/{plural}[/{name}[/{subresource}]]`` and
``/apis/{group}/{version}[/namespaces/{ns}]/{plural}[/{name}[/{subresource}]]``) to the verbs of
:mod:`kube_double.api`, list/watch (:mod:`kube_double.watch`), pod logs (:mod:`kube_double.kubelet`) and discovery
(:mod:`kube_double.discovery`). It speaks JSON only (no protobuf), accepts any bearer token, records every
(method, path) in ``KubeDouble.requests``, applies the armed faults (:mod:`kube_double.faults`) and renders every
error as a ``Status`` object. ``kubectl get``'s server-side printing is served (``as=Table``) by
:mod:`kube_double.tables`. Pagination (``limit``/``continue``) is accepted and ignored: every list is complete,
which the API allows. Only a minimal /openapi/v3 is served (see :mod:`kube_double.openapi`).
"""

from __future__ import annotations

import json
import traceback

from aiohttp import web

from . import discovery, errors, openapi, tables
from .watch import serve_watch


def _json(body, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), status=status, content_type="application/json", headers=headers)


def build_app(double) -> web.Application:
    @web.middleware
    async def middleware(request: web.Request, handler):
        double.requests.append((request.method, request.path))
        double.queries.append((request.method, request.path_qs))
        try:
            fault = double.faults.take_request_fault(request.method, request.path_qs)
            if fault is not None:
                headers = {}
                details = None
                if fault.retry_after is not None:
                    headers["Retry-After"] = str(
                        int(fault.retry_after) if float(fault.retry_after).is_integer() else fault.retry_after
                    )
                    details = {"retryAfterSeconds": int(fault.retry_after)}
                raise errors.ApiError(fault.code, fault.reason, fault.message, details, headers)
            return await handler(request)
        except errors.ApiError as exc:
            return _json(exc.status(), exc.code, exc.headers)
        except web.HTTPException:
            raise
        except Exception as exc:  # a bug in the double: answer like the real server would, but loudly
            traceback.print_exc()
            return _json(errors.ApiError(500, "InternalError", f"Internal error occurred: {exc!r}").status(), 500)

    async def dispatch(request: web.Request):
        return await route(double, request)

    app = web.Application(middlewares=[middleware], client_max_size=256 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


def _not_found_path() -> errors.ApiError:
    return errors.ApiError(404, "NotFound", "the server could not find the requested resource", {})


async def route(double, request: web.Request):
    registry = double._registry
    parts = [p for p in request.path.split("/") if p]
    if not parts:
        return _json({"paths": ["/api", "/api/v1", "/apis", "/version", "/healthz"]})
    if parts == ["version"]:
        return _json(discovery.version_info())
    if parts[0] in ("healthz", "livez", "readyz"):
        return web.Response(text="ok")
    if parts[:2] == ["openapi", "v3"]:
        document = openapi.root(registry) if len(parts) == 2 else openapi.group_version(registry, "/".join(parts[2:]))
        if document is None:
            raise _not_found_path()
        return _json(document)
    if parts[0] == "api":
        if len(parts) == 1:
            return _json(discovery.api_versions(request.host))
        group, version, rest = "", parts[1], parts[2:]
    elif parts[0] == "apis":
        if len(parts) == 1:
            return _json(discovery.group_list(registry))
        if len(parts) == 2:
            found = discovery.group(registry, parts[1])
            if not found:
                raise _not_found_path()
            return _json(found)
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise _not_found_path()
    if not rest:
        found = discovery.resource_list(registry, group, version)
        if not found:
            raise _not_found_path()
        return _json(found)
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        candidate = registry.lookup(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            namespace, rest = rest[1], rest[2:]
    rt = registry.lookup(group, version, rest[0])
    if rt is None or (namespace is not None and not rt.namespaced) or len(rest) > 3:
        raise _not_found_path()
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and sub not in rt.subresources:
        raise _not_found_path()
    params = request.query
    method = request.method
    api = double._api
    field_validation = params.get("fieldValidation", "Strict")
    dry_run = params.get("dryRun") == "All"

    if name is None:
        if method == "GET":
            if params.get("watch") in ("true", "1", "True"):
                return await serve_watch(request, double, rt, version, namespace, params)
            items, rv = api.list(rt, namespace, params.get("labelSelector"), params.get("fieldSelector"))
            body = {
                "kind": rt.list_kind or f"{rt.kind}List",
                "apiVersion": rt.api_version(version),
                "metadata": {"resourceVersion": rv},
                "items": [api.render(rt, version, o) for o in items],
            }
            if tables.wants_table(request):
                return _json(tables.table(rt, version, body["items"], rv, request))
            return _json(body)
        if method == "POST":
            if rt.namespaced and namespace is None:
                raise errors.method_not_allowed()
            body = await _read_json(request)
            fault = double.faults.take_create_fault(rt)
            if fault is not None:
                name_hint = (body.get("metadata") or {}).get("name", "") if isinstance(body, dict) else ""
                raise errors.ApiError(
                    fault.code,
                    fault.reason,
                    f'{rt.group_resource()} "{name_hint}" is forbidden: {fault.message}',
                    {"name": name_hint, "kind": rt.plural, **({"group": rt.group} if rt.group else {})},
                )
            created = api.create(rt, version, namespace, body, field_validation, dry_run)
            return _json(api.render(rt, version, created), 201)
        if method == "DELETE":
            options = await _delete_options(request)
            items, _ = api.list(rt, namespace, params.get("labelSelector"), params.get("fieldSelector"))
            for item in items:
                try:
                    api.delete(rt, item["metadata"].get("namespace"), item["metadata"]["name"], *options)
                except errors.ApiError:
                    pass
            return _json(
                {
                    "kind": rt.list_kind or f"{rt.kind}List",
                    "apiVersion": rt.api_version(version),
                    "metadata": {},
                    "items": [api.render(rt, version, o) for o in items],
                }
            )
        raise errors.method_not_allowed()

    if sub == "log":
        if method != "GET":
            raise errors.method_not_allowed()
        pod = api.get(rt, namespace, name)
        return await double._kubelet.serve_log(request, pod, params)
    if method == "GET":
        obj = api.get(rt, namespace, name)
        if tables.wants_table(request):
            return _json(
                tables.table(rt, version, [api.render(rt, version, obj)], obj["metadata"]["resourceVersion"], request)
            )
        return _json(api.render(rt, version, obj))
    if method == "PUT":
        body = await _read_json(request)
        updated = api.update(rt, version, namespace, name, body, sub, field_validation, dry_run)
        return _json(api.render(rt, version, updated))
    if method == "PATCH":
        raw = await request.read()
        updated = api.patch(
            rt, version, namespace, name, request.headers.get("Content-Type", ""), raw, sub, field_validation, dry_run
        )
        return _json(api.render(rt, version, updated))
    if method == "DELETE" and sub is None:
        options = await _delete_options(request)
        code, obj, removed = api.delete(rt, namespace, name, *options, dry_run=dry_run)
        if rt.plural == "pods" or not rt.builtin or not removed:
            return _json(api.render(rt, version, obj), code)
        details = {"name": name, "kind": rt.plural, "uid": obj["metadata"]["uid"]}
        if rt.group:
            details["group"] = rt.group
        return _json(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}, code
        )
    raise errors.method_not_allowed()


async def _read_json(request: web.Request):
    raw = await request.read()
    content_type = request.headers.get("Content-Type", "application/json").split(";")[0].strip()
    if content_type not in ("application/json", "", "*/*", "application/yaml"):
        raise errors.ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - "
            f"accepted media types include: application/json, "
            f"application/yaml (got {content_type})",
        )
    try:
        if content_type == "application/yaml":
            import yaml

            return yaml.safe_load(raw)
        return json.loads(raw or b"null")
    except ValueError as exc:
        raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from None


async def _delete_options(request: web.Request):
    raw = await request.read()
    options = {}
    if raw.strip():
        try:
            options = json.loads(raw)
        except ValueError as exc:
            raise errors.bad_request(f"invalid DeleteOptions: {exc}") from None
    params = request.query
    propagation = params.get("propagationPolicy") or options.get("propagationPolicy")
    if propagation is None:
        orphan = params.get("orphanDependents", options.get("orphanDependents"))
        if orphan in (True, "true"):
            propagation = "Orphan"
        elif orphan in (False, "false"):
            propagation = "Background"
    if propagation not in (None, "Foreground", "Background", "Orphan"):
        raise errors.bad_request(
            f'Unsupported value: "{propagation}": supported values: "Foreground", "Background", "Orphan"'
        )
    grace = params.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
    grace = int(grace) if grace not in (None, "") else None
    return propagation, grace, options.get("preconditions")
