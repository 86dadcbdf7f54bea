"""Builders for the `google.rpc.Status` error bodies Google's REST APIs send.

Every error the emulator answers has the JSON shape Google uses:
`{"error": {"code": 403, "message": "...", "status": "PERMISSION_DENIED", "details": [...]}}`,
where each detail carries an `@type` of `type.googleapis.com/google.rpc.<Message>`. Handlers raise
`RpcError`; the server turns it into the HTTP response, so no handler writes a body by hand.
"""

from __future__ import annotations

from typing import Any

_TYPE = "type.googleapis.com/google.rpc."

# HTTP code for each canonical status, as Google maps them.
HTTP_CODES: dict[str, int] = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}

STATUS_FOR_CODE: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

# Default messages for injected faults, worded like Google's front end.
_FAULT_MESSAGES = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
    504: "The request timed out. Please try again.",
}


class RpcError(Exception):
    """An error answer: HTTP code, canonical status, message and typed details."""

    def __init__(self, status: str, message: str, details: list[dict[str, Any]] | None = None,
                 code: int | None = None):
        self.status = status
        self.code = code if code is not None else HTTP_CODES[status]
        self.message = message
        self.details = list(details or [])
        super().__init__(f"{self.code} {status}: {message}")

    def body(self) -> dict[str, Any]:
        """Return the JSON body Google sends for this error."""
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def error_info(reason: str, domain: str, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """Return a `google.rpc.ErrorInfo` detail."""
    return {"@type": _TYPE + "ErrorInfo", "reason": reason, "domain": domain,
            "metadata": dict(metadata or {})}


def help_links(*links: tuple[str, str]) -> dict[str, Any]:
    """Return a `google.rpc.Help` detail from (description, url) pairs."""
    return {"@type": _TYPE + "Help",
            "links": [{"description": d, "url": u} for d, u in links]}


def localized(message: str) -> dict[str, Any]:
    """Return a `google.rpc.LocalizedMessage` detail in en-US."""
    return {"@type": _TYPE + "LocalizedMessage", "locale": "en-US", "message": message}


def quota_failure(violations: list[dict[str, Any]]) -> dict[str, Any]:
    """Return a `google.rpc.QuotaFailure` detail."""
    return {"@type": _TYPE + "QuotaFailure", "violations": violations}


def retry_info(seconds: int) -> dict[str, Any]:
    """Return a `google.rpc.RetryInfo` detail; the delay is whole seconds, as Gemini sends it."""
    return {"@type": _TYPE + "RetryInfo", "retryDelay": f"{int(seconds)}s"}


def precondition_failure(kind: str, subject: str, description: str) -> dict[str, Any]:
    """Return a `google.rpc.PreconditionFailure` detail with one violation."""
    return {"@type": _TYPE + "PreconditionFailure",
            "violations": [{"type": kind, "subject": subject, "description": description}]}


def bad_request(field: str, description: str) -> dict[str, Any]:
    """Return a `google.rpc.BadRequest` detail naming the offending field."""
    return {"@type": _TYPE + "BadRequest",
            "fieldViolations": [{"field": field, "description": description}]}


def invalid_argument(message: str, field: str | None = None) -> RpcError:
    """Return a 400 INVALID_ARGUMENT, with a BadRequest detail when a field is named."""
    return RpcError("INVALID_ARGUMENT", message, [bad_request(field, message)] if field else None)


def not_found(message: str) -> RpcError:
    """Return a 404 NOT_FOUND."""
    return RpcError("NOT_FOUND", message)


def service_disabled(service: str, title: str, number: str) -> RpcError:
    """Return the 403 Google sends when `service` is not enabled in project `number`."""
    url = f"https://console.developers.google.com/apis/api/{service}/overview?project={number}"
    message = (f"{title} has not been used in project {number} before or it is disabled. "
               f"Enable it by visiting {url} then retry. If you enabled this API recently, wait a "
               "few minutes for the action to propagate to our systems and retry.")
    return RpcError("PERMISSION_DENIED", message, [
        error_info("SERVICE_DISABLED", "googleapis.com", {
            "service": service, "consumer": f"projects/{number}", "serviceTitle": title,
            "containerInfo": number, "activationUrl": url}),
        localized(message),
        help_links(("Google developers console API activation", url)),
    ])


def permission_denied(permission: str, resource: str) -> RpcError:
    """Return the 403 IAM sends when the caller lacks `permission` on `resource`."""
    message = f"Permission '{permission}' denied on resource '{resource}' (or it may not exist)."
    return RpcError("PERMISSION_DENIED", message, [
        error_info("IAM_PERMISSION_DENIED", "iam.googleapis.com",
                   {"permission": permission, "resource": resource}),
    ])


def fault(code: int) -> RpcError:
    """Return an injected failure with HTTP `code` and the status Google pairs with it."""
    status = STATUS_FOR_CODE.get(code, "UNKNOWN")
    return RpcError(status, _FAULT_MESSAGES.get(code, "Injected failure."), code=code)
