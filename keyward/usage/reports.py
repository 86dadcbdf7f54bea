"""The two records a program sends keyward, and their newline-delimited JSON form.

One JSON object per line: `{"type": "usage", "pool": …, "requests": 1, "input_tokens": …}` or
`{"type": "error", "http_status": 429, "body": {…Google's error body…}}`. A line may name the key by
`key_sha256` (the hex SHA-256 of the key string, the fingerprint keyward looks keys up by), `key_id`,
or neither (the pool's current key). The key string itself never travels: whoever listens on the
port when the daemon is down learns nothing usable. (`key`, the string, is still accepted from
older clients and fingerprinted on arrival.)

Every value has a bound (see BOUNDS and the README's Security section): counts, name lengths and
characters, the time window of `at`. Validation names the field that is wrong, never its value,
since that value might be a key.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from keyward.errors import UsageError

_NAME_FIELDS = ("pool", "key_id", "model")

# Bounds on what one report may say. A report is one call (or a few aggregated); these leave
# room for any real use while keeping every sum far from a 64-bit column's limit.
MAX_REQUESTS = 1_000_000
MAX_TOKENS = 1_000_000_000
MAX_PAST = timedelta(days=7)  # older usage no longer moves any quota window keyward tracks
MAX_FUTURE = timedelta(minutes=5)  # clock skew between hosts, no more
_NAME_RES = {
    "pool": re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}"),
    "key_id": re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}"),
    "model": re.compile(r"(models/)?[A-Za-z0-9][A-Za-z0-9._-]{0,63}"),
}
_NAME_HINTS = {
    "pool": "letters, digits, '-' and '_', at most 63",
    "key_id": "letters, digits, '-' and '_', at most 63",
    "model": "a Gemini model name such as gemini-2.5-flash, at most 64 characters",
}
_FP_RE = re.compile(r"[0-9a-f]{64}")
_KEY_LIKE = re.compile(r"AIza|AQ\.")


def key_fingerprint(secret: str) -> str:
    """The hex SHA-256 of a key string: what reports carry instead of the key."""
    return hashlib.sha256(secret.strip().encode()).hexdigest()


@dataclass(frozen=True)
class UsageReport:
    """Requests and tokens a program spent with one key (or the pool's current key)."""

    pool: str | None = None
    key: str | None = None
    key_id: str | None = None
    model: str | None = None
    requests: int = 1
    input_tokens: int = 0
    output_tokens: int = 0
    at: datetime | None = None
    key_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.key is not None and self.key_sha256 is None:
            object.__setattr__(self, "key_sha256", key_fingerprint(self.key))

    def __repr__(self) -> str:  # the key string must never reach a log line through repr()
        return (f"UsageReport(pool={self.pool!r}, key={'<set>' if self.key_sha256 else None}, "
                f"key_id={self.key_id!r}, model={self.model!r}, requests={self.requests}, "
                f"input_tokens={self.input_tokens}, output_tokens={self.output_tokens})")


@dataclass(frozen=True)
class ErrorReport:
    """A failed Gemini call exactly as it came back: HTTP status and body."""

    http_status: int
    body: Any = None
    pool: str | None = None
    key: str | None = None
    key_id: str | None = None
    model: str | None = None
    at: datetime | None = None
    key_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.key is not None and self.key_sha256 is None:
            object.__setattr__(self, "key_sha256", key_fingerprint(self.key))

    def __repr__(self) -> str:
        return (f"ErrorReport(http_status={self.http_status}, pool={self.pool!r}, "
                f"key={'<set>' if self.key_sha256 else None}, key_id={self.key_id!r}, model={self.model!r})")


Report = UsageReport | ErrorReport


def _count(obj: dict, name: str, default: int, maximum: int) -> int:
    value = obj.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise UsageError(f"{name} must be an integer from 0 to {maximum:,}")
    return value


def _names(obj: dict) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _NAME_FIELDS:
        value = obj.get(name)
        if value is None:
            out[name] = None
            continue
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"{name} must be a non-empty string")
        value = value.strip()
        if _KEY_LIKE.match(value):
            raise UsageError(f"{name} looks like a key string; name a key by key_id or key_sha256")
        if not _NAME_RES[name].fullmatch(value):
            raise UsageError(f"{name} must be {_NAME_HINTS[name]}")
        out[name] = value
    return out


def _key_fields(obj: dict) -> dict[str, str | None]:
    """The key's fingerprint, from `key_sha256` or (older clients) from the string in `key`."""
    fp, secret = obj.get("key_sha256"), obj.get("key")
    if fp is not None and secret is not None:
        raise UsageError("give key_sha256 or key, not both")
    if secret is not None:
        if not isinstance(secret, str) or not 0 < len(secret) <= 1024 or not secret.strip():
            raise UsageError("key must be a key string")
        return {"key_sha256": key_fingerprint(secret)}
    if fp is not None and (not isinstance(fp, str) or not _FP_RE.fullmatch(fp)):
        raise UsageError("key_sha256 must be 64 lowercase hex digits (the SHA-256 of the key string)")
    return {"key_sha256": fp}


def check_time(at: datetime, now: datetime | None = None) -> datetime:
    """Return `at` in UTC if it lies within MAX_PAST before and MAX_FUTURE after `now`."""
    now = now or datetime.now(timezone.utc)
    try:
        at = at.astimezone(timezone.utc)
        ok = now - MAX_PAST <= at <= now + MAX_FUTURE
    except (OverflowError, ValueError):
        ok = False
    if not ok:
        raise UsageError("at must lie within the last 7 days (and at most 5 minutes ahead)")
    return at


def _at(obj: dict) -> datetime | None:
    raw = obj.get("at")
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) > 40:
        raise UsageError("at must be an ISO 8601 time with an offset")
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError("at must be an ISO 8601 time with an offset") from None
    if at.tzinfo is None:
        raise UsageError("at must be an ISO 8601 time with an offset")
    return check_time(at)


def check_body(body: Any) -> Any:
    """Return an error report's body if it can be Google's: None, text (kept as an unreadable
    body), or JSON that is a Google error. Other JSON is refused rather than read as a 429."""
    from keyward.quota.signals import MAX_BODY, google_error

    if body is None:
        return None
    if isinstance(body, str):
        return body[:MAX_BODY]
    try:
        ok = google_error(body) is not None
    except RecursionError:
        ok = False
    if not ok:
        raise UsageError('body is not a Google error: expected {"error": {"code": …, '
                         '"status": …, "message": …}} (or the response text as it came)')
    return body


def from_json(obj: Any) -> Report:
    """Build a report from one decoded JSON line; raise UsageError naming the bad field."""
    if not isinstance(obj, dict):
        raise UsageError("each line must be a JSON object")
    kind = obj.get("type", "usage")
    names = _names(obj)
    keys = _key_fields(obj)
    if kind == "usage":
        report = UsageReport(**names, requests=_count(obj, "requests", 1, MAX_REQUESTS),
                             input_tokens=_count(obj, "input_tokens", 0, MAX_TOKENS),
                             output_tokens=_count(obj, "output_tokens", 0, MAX_TOKENS), at=_at(obj),
                             **keys)
        if report.requests == report.input_tokens == report.output_tokens == 0:
            raise UsageError("a usage report must count at least one request or token")
        return report
    if kind == "error":
        status = obj.get("http_status")
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise UsageError("http_status must be an HTTP status code")
        return ErrorReport(status, check_body(obj.get("body")), **names, at=_at(obj), **keys)
    raise UsageError('type must be "usage" or "error"')


def to_json(report: Report) -> dict[str, Any]:
    """The JSON object for one report (the inverse of from_json)."""
    if isinstance(report, UsageReport):
        out: dict[str, Any] = {"type": "usage", "requests": report.requests,
                               "input_tokens": report.input_tokens,
                               "output_tokens": report.output_tokens}
    else:
        out = {"type": "error", "http_status": report.http_status, "body": report.body}
    for name in (*_NAME_FIELDS, "key_sha256"):
        value = getattr(report, name)
        if value is not None:
            out[name] = value
    if report.at is not None:
        out["at"] = report.at.isoformat()
    return out


def quota_error_body(retry_after_s: float, *, model: str | None = None,
                     per_day: bool = False) -> dict[str, Any]:
    """A 429 body shaped as Google sends it, for `keyward report --exhausted`.

    Going through the same parser as real bodies keeps one path from report to exhaustion.
    """
    quota_id = ("GenerateRequestsPerDayPerProjectPerModel" if per_day
                else "GenerateRequestsPerMinutePerProjectPerModel")
    violation: dict[str, Any] = {
        "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
        "quotaId": quota_id}
    if model:
        violation["quotaDimensions"] = {"location": "global", "model": model}
    delay = f"{retry_after_s:g}s"
    return {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
                      "message": "Quota exceeded (reported by the operator).",
                      "details": [
                          {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                           "violations": [violation]},
                          {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                           "retryDelay": delay}]}}
