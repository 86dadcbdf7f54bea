"""Turn Google's errors into keyward's, and retry the ones that pass.

Every failure of a Google call becomes one of: PermissionMissing (names the IAM permission and the
role that grants it), ApiDisabled (names the service and how to enable it), PolicyBlocked (names the
org policy constraint), Transient (429/5xx, timeouts, unreachable host, malformed body: retried by
`keyward.google.retry.with_retries`
within a time budget), or GoogleError (status 404 for a missing resource, else the
rest). Messages read "<action> in project P: <what> — <how to fix>".

Nothing from a request URL or a raw response body reaches a message: lookupKey and verification
carry the key string in their URLs, so only the parsed `error.message` is used, scrubbed of anything
shaped like a key and shortened.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keyward import keystrings
from keyward.errors import (ApiDisabled, GoogleError, KeywardError, PermissionMissing,
                            PolicyBlocked, Transient)
from keyward.google.retry import BACKOFF_BASE, BACKOFF_CAP, with_retries

__all__ = ["translate", "from_status", "with_retries", "scrub", "mask_keys", "role_for",
           "MalformedResponse", "RpcStatus", "status_from_body", "status_from_operation",
           "BACKOFF_BASE", "BACKOFF_CAP"]

log = logging.getLogger(__name__)

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
POLICY_CONSTRAINT = "iam.managed.disableServiceAccountApiKeyCreation"

# The IAM permission each keyward action needs, when Google's answer does not name it.
PERMISSIONS: dict[str, str] = {
    "create": "apikeys.keys.create",
    "delete": "apikeys.keys.delete",
    "list": "apikeys.keys.list",
    "getKeyString": "apikeys.keys.getKeyString",
    "get": "apikeys.keys.get",
    "undelete": "apikeys.keys.undelete",
    "lookup": "apikeys.keys.lookup",
    "operations": "serviceusage.operations.get",
    "monitoring": "monitoring.timeSeries.list",
    "metrics_scope": "resourcemanager.projects.get",
    "quota": "serviceusage.quotas.get",
}

# How each action reads in a message.
ACTION_PHRASES: dict[str, str] = {
    "create": "creating an API key",
    "delete": "deleting an API key",
    "list": "listing API keys",
    "getKeyString": "reading an API key's key string",
    "get": "reading an API key",
    "undelete": "restoring a deleted API key",
    "lookup": "looking up an API key",
    "operations": "waiting for an API Keys operation",
    "monitoring": "reading request counts from Cloud Monitoring",
    "metrics_scope": "reading a Cloud Monitoring metrics scope",
    "quota": "reading Gemini quota limits",
}

# gRPC codes (Operation.error.code) as HTTP statuses.
_GRPC_TO_HTTP = {1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400,
                 10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401}

_KEYLIKE = re.compile(r"AIza[0-9A-Za-z_-]{8,}|AQ\.[0-9A-Za-z_.\-]{8,}")
_CONSTRAINT = re.compile(r"constraints/([A-Za-z0-9_.]+)")


def role_for(permission: str) -> str:
    """Return the predefined role that grants `permission`."""
    if permission.startswith("monitoring.") or permission == "resourcemanager.projects.get":
        return "roles/monitoring.viewer"  # it holds resourcemanager.projects.get too
    if permission.startswith(("serviceusage.quotas", "serviceusage.services")):
        return "roles/serviceusage.serviceUsageViewer"
    # apiKeysAdmin holds every apikeys.* permission and serviceusage.operations.get.
    return "roles/serviceusage.apiKeysAdmin"


def mask_keys(text: str) -> str:
    """Return `text` with every key-shaped substring replaced by its mask."""
    return _KEYLIKE.sub(lambda m: keystrings.mask(m.group(0)), text)


def scrub(text: str, limit: int = 240) -> str:
    """Return `text` on one line, key-shaped substrings masked, at most `limit` characters."""
    text = mask_keys(" ".join(str(text).split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


class MalformedResponse(ValueError):
    """A Google answer that is not the JSON object the API promises."""


@dataclass
class RpcStatus:
    """The parts of a `google.rpc.Status` keyward reads, from an HTTP error or an Operation."""

    http_status: int | None
    status: str = ""
    message: str = ""
    details: list[dict[str, Any]] = field(default_factory=list)

    def detail(self, kind: str) -> dict[str, Any]:
        for d in self.details:
            if isinstance(d, dict) and str(d.get("@type", "")).endswith("google.rpc." + kind):
                return d
        return {}

    @property
    def error_info(self) -> dict[str, Any]:
        return self.detail("ErrorInfo")

    @property
    def reason(self) -> str:
        return str(self.error_info.get("reason") or "")

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.error_info.get("metadata")
        return meta if isinstance(meta, dict) else {}

    def help_urls(self) -> list[str]:
        links = self.detail("Help").get("links") or []
        return [str(link["url"]) for link in links if isinstance(link, dict) and link.get("url")]

    def retry_after(self) -> float | None:
        delay = str(self.detail("RetryInfo").get("retryDelay") or "")
        try:
            return float(delay.rstrip("s")) if delay else None
        except ValueError:
            return None


def status_from_body(http_status: int | None, body: bytes | str | None) -> RpcStatus:
    """Parse Google's JSON error body; an unparsable body yields just the HTTP status."""
    try:
        data = json.loads(body or b"")
    except (ValueError, TypeError):
        return RpcStatus(http_status)
    if isinstance(data, list) and data:
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return RpcStatus(http_status)
    return RpcStatus(http_status, str(err.get("status") or ""), str(err.get("message") or ""),
                     _details(err))


def status_from_operation(error: dict[str, Any]) -> RpcStatus:
    """Read the `error` of a finished Operation (gRPC code numbers) as an RpcStatus."""
    code = error.get("code")
    return RpcStatus(_GRPC_TO_HTTP.get(code) if isinstance(code, int) else None, "",
                     str(error.get("message") or ""), _details(error))


def _details(error: dict[str, Any]) -> list[dict[str, Any]]:
    details = error.get("details")
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def translate(exc: BaseException, *, action: str, project: str | None) -> KeywardError:
    """Return the keyward error for a failed Google call; KeywardErrors pass through unchanged."""
    if isinstance(exc, KeywardError):
        return exc
    where = where_phrase(action, project)
    try:
        from googleapiclient.errors import HttpError
    except ImportError:  # pragma: no cover - the dependency is declared
        HttpError = ()  # type: ignore[assignment,misc]
    if isinstance(exc, HttpError):
        return from_status(status_from_body(exc.status_code, exc.content), action=action,
                           project=project)
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return Transient(f"{where}: Google did not answer in time — keyward retries; check the "
                         "network if it persists", reason="TIMEOUT")
    if isinstance(exc, (MalformedResponse, json.JSONDecodeError)) or type(exc) is ValueError:
        return Transient(f"{where}: Google sent a malformed answer — keyward retries",
                         reason="MALFORMED")
    if isinstance(exc, (OSError, http.client.HTTPException)) or _is_httplib2_error(exc):
        return Transient(f"{where}: could not reach Google ({type(exc).__name__}) — check the "
                         "network or proxy; keyward retries", reason="UNREACHABLE")
    refresh = _refresh_error(exc)
    if refresh is not None:
        return refresh(where)
    return GoogleError(f"{where}: unexpected {type(exc).__name__} from the Google client")


def from_status(st: RpcStatus, *, action: str, project: str | None) -> KeywardError:
    """Classify a parsed Google error status into a keyward error."""
    where = where_phrase(action, project)
    code = st.http_status
    reason = st.reason or st.status or None
    said = scrub(st.message)
    disabled = code == 403 and "has not been used in project" in st.message
    if st.reason == "SERVICE_DISABLED" or disabled:
        service = str(st.metadata.get("service") or _service_of(action))
        url = str(st.metadata.get("activationUrl") or "") or next(
            (u for u in st.help_urls() if "console" in u), "")
        how = f"`gcloud services enable {service} --project {project or 'PROJECT'}`"
        if url:
            how += f" or visit {scrub(url, 300)}"
        return ApiDisabled(f"{where}: the {service} API is disabled — enable it with {how}, "
                           "then wait a few minutes", status=code, reason="SERVICE_DISABLED")
    constraint = _policy_constraint(st)
    if constraint:
        return PolicyBlocked(f"{where}: organization policy constraint {constraint} forbids it — "
                             "ask an organization policy administrator to exempt this project, or "
                             "configure keys without a service account", status=code, reason=reason)
    if code == 403 or st.status == "PERMISSION_DENIED" or st.reason == "IAM_PERMISSION_DENIED":
        permission = str(st.metadata.get("permission") or PERMISSIONS.get(action, "")) or "unknown"
        return PermissionMissing(
            f"{where}: permission {permission} is missing — grant {role_for(permission)} to "
            "keyward's service account on this project", status=code or 403, reason=reason)
    if code == 401 or st.status == "UNAUTHENTICATED":
        return GoogleError(f"{where}: Google rejected keyward's credentials "
                           f"({said or 'unauthenticated'}) — check the service-account key "
                           "file or Application Default Credentials", status=code, reason=reason)
    if code in TRANSIENT_STATUSES:
        err = Transient(f"{where}: Google answered {code} {st.status or ''}".rstrip()
                        + " — keyward retries; this usually passes", status=code, reason=reason)
        err.retry_after = st.retry_after()  # type: ignore[attr-defined]
        return err
    if code == 404:
        return GoogleError(f"{where}: not found ({said or 'no such resource'})", status=404,
                           reason=reason or "NOT_FOUND")
    return GoogleError(f"{where}: Google answered {code or '?'} {st.status}: "
                       f"{said or 'no message'}", status=code, reason=reason)


def where_phrase(action: str, project: str | None) -> str:
    phrase = ACTION_PHRASES.get(action, action)
    return f"{phrase} in project {project}" if project else phrase


def _service_of(action: str) -> str:
    if action in ("monitoring", "metrics_scope"):
        return "monitoring.googleapis.com"
    if action == "quota":
        return "serviceusage.googleapis.com"
    return "apikeys.googleapis.com"


def _policy_constraint(st: RpcStatus) -> str | None:
    texts = [st.message, st.reason, *map(str, st.metadata.values())]
    for violation in st.detail("PreconditionFailure").get("violations") or []:
        if isinstance(violation, dict):
            texts += [str(violation.get("type", "")), str(violation.get("subject", "")),
                      str(violation.get("description", ""))]
    for text in texts:
        if POLICY_CONSTRAINT in text:
            return POLICY_CONSTRAINT
        found = _CONSTRAINT.search(text)
        if found:
            return found.group(1)
    if "ORG_POLICY" in st.reason.upper():
        return str(st.metadata.get("constraint") or POLICY_CONSTRAINT).removeprefix("constraints/")
    return None


def _is_httplib2_error(exc: BaseException) -> bool:
    mod = type(exc).__module__ or ""
    return mod.startswith("httplib2")


def _refresh_error(exc: BaseException) -> Callable[[str], KeywardError] | None:
    try:
        from google.auth.exceptions import RefreshError, TransportError
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, TransportError):
        return lambda where: Transient(f"{where}: could not reach Google's token service — keyward "
                                       "retries", reason="UNREACHABLE")
    if isinstance(exc, RefreshError):
        if getattr(exc, "retryable", False):
            return lambda where: Transient(f"{where}: getting an access token failed — keyward "
                                           "retries", reason="TOKEN")
        return lambda where: GoogleError(f"{where}: Google refused an access token for keyward's "
                                         "credentials — check the service-account key (it may be "
                                         "deleted or disabled)", reason="TOKEN")
    return None
