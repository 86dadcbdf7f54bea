"""The two records a program sends keyward, and their newline-delimited JSON form.

One JSON object per line: `{"type": "usage", "pool": …, "requests": 1, "input_tokens": …}` or
`{"type": "error", "http_status": 429, "body": {…Google's error body…}}`. A line may name the key by
`key` (the key string; it travels only over the local socket and is never logged), `key_id`, or
neither (the pool's current key). Validation names the field that is wrong, never its value, since
that value might be a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from keyward.errors import UsageError

_NAME_FIELDS = ("pool", "key", "key_id", "model")


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

    def __repr__(self) -> str:  # the key string must never reach a log line through repr()
        return (f"UsageReport(pool={self.pool!r}, key={'<set>' if self.key else None}, "
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

    def __repr__(self) -> str:
        return (f"ErrorReport(http_status={self.http_status}, pool={self.pool!r}, "
                f"key={'<set>' if self.key else None}, key_id={self.key_id!r}, model={self.model!r})")


Report = UsageReport | ErrorReport


def _count(obj: dict, name: str, default: int) -> int:
    value = obj.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"{name} must be a non-negative integer")
    return value


def _names(obj: dict) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _NAME_FIELDS:
        value = obj.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise UsageError(f"{name} must be a non-empty string")
        out[name] = value.strip() if isinstance(value, str) else None
    return out


def _at(obj: dict) -> datetime | None:
    raw = obj.get("at")
    if raw is None:
        return None
    try:
        at = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise UsageError("at must be an ISO 8601 time with an offset") from None
    if at.tzinfo is None:
        raise UsageError("at must be an ISO 8601 time with an offset")
    return at


def from_json(obj: Any) -> Report:
    """Build a report from one decoded JSON line; raise UsageError naming the bad field."""
    if not isinstance(obj, dict):
        raise UsageError("each line must be a JSON object")
    kind = obj.get("type", "usage")
    names = _names(obj)
    if kind == "usage":
        report = UsageReport(**names, requests=_count(obj, "requests", 1),
                             input_tokens=_count(obj, "input_tokens", 0),
                             output_tokens=_count(obj, "output_tokens", 0), at=_at(obj))
        if report.requests == report.input_tokens == report.output_tokens == 0:
            raise UsageError("a usage report must count at least one request or token")
        return report
    if kind == "error":
        status = obj.get("http_status")
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise UsageError("http_status must be an HTTP status code")
        return ErrorReport(status, obj.get("body"), **names, at=_at(obj))
    raise UsageError('type must be "usage" or "error"')


def to_json(report: Report) -> dict[str, Any]:
    """The JSON object for one report (the inverse of from_json)."""
    if isinstance(report, UsageReport):
        out: dict[str, Any] = {"type": "usage", "requests": report.requests,
                               "input_tokens": report.input_tokens,
                               "output_tokens": report.output_tokens}
    else:
        out = {"type": "error", "http_status": report.http_status, "body": report.body}
    for name in _NAME_FIELDS:
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
