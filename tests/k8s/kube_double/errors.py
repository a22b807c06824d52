"""API errors as ``Status`` objects (part of the Kubernetes API server test double).

:class:`ApiError` carries the HTTP code, the ``reason`` and ``message`` worded like the real API server
(``pods "x" not found``, ``jobs.batch "x" already exists``, ``Operation cannot be fulfilled on ...``) and
``details``; :meth:`ApiError.status` renders the ``{"kind": "Status", "apiVersion": "v1", "status": "Failure"}``
body that Kubernetes clients decode.
"""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict | None = None, headers: dict | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(rt, name):
    details = {"name": name, "kind": rt.plural}
    if rt.group:
        details["group"] = rt.group
    return details


def not_found(rt, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.group_resource()} "{name}" not found', _details(rt, name))


def already_exists(rt, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{rt.group_resource()} "{name}" already exists', _details(rt, name))


def conflict(
    rt,
    name: str,
    why: str = "the object has been modified; please apply your changes to the latest version and try again",
) -> ApiError:
    return ApiError(
        409, "Conflict", f'Operation cannot be fulfilled on {rt.group_resource()} "{name}": {why}', _details(rt, name)
    )


def invalid(rt, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """causes: (reason, field, message) e.g. ("FieldValueInvalid", "metadata.name", 'Invalid value: "X": ...')."""
    text = ", ".join(f"{field}: {message}" for _, field, message in causes)
    if len(causes) > 1:
        text = "[" + text + "]"
    details = {"name": name, "kind": rt.kind, "causes": [{"reason": r, "message": m, "field": f} for r, f, m in causes]}
    if rt.group:
        details["group"] = rt.group
    return ApiError(422, "Invalid", f'{rt.qualified_kind()} "{name}" is invalid: {text}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def namespace_not_found(namespace: str) -> ApiError:
    return ApiError(404, "NotFound", f'namespaces "{namespace}" not found', {"name": namespace, "kind": "namespaces"})


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml "
        f"(got {content_type})",
    )
