"""Read a failed Gemini call and say what it means for the key and the project behind it.

Google answers a refused call with a `google.rpc.Status` body. What keyward needs from it:
is the project's quota exhausted (for which model, until when), was the key refused, was the
project or key suspended, or is it Google's own hiccup. The function here is pure: the caller
passes the HTTP status, the body (bytes, text, parsed JSON or nothing) and `now`.

Nothing from the body is copied into `reason` as free text, because a proxy can echo the
request (and so a key) in an error message: `reason` is built from codes that are checked to
be plain identifiers and never look like a key.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Literal

from keyward.quota.windows import next_pacific_midnight, require_aware, utc_clock

Kind = Literal["quota", "invalid_key", "suspended", "no_key", "transient", "other"]
Scope = Literal["minute", "day", "tokens"]

DEFAULT_RETRY = timedelta(seconds=60)
_STRICTNESS = {"minute": 0, "tokens": 1, "day": 2}

_INVALID_KEY_REASONS = frozenset(
    {"API_KEY_INVALID", "ACCESS_TOKEN_TYPE_UNSUPPORTED", "API_KEY_EXPIRED"}
)
_SUSPENDED_REASONS = frozenset(
    {"API_KEY_SERVICE_BLOCKED", "CONSUMER_SUSPENDED", "PROJECT_SUSPENDED", "SERVICE_SUSPENDED"}
)
_QUOTA_REASONS = frozenset({"RATE_LIMIT_EXCEEDED", "RATELIMITEXCEEDED", "RESOURCE_EXHAUSTED"})

_IDENT_RE = re.compile(r"[A-Za-z0-9_.:/@-]{1,120}")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|us|µs|ns|m|s)")
_DURATION_SECONDS = {
    "h": Decimal(3600), "m": Decimal(60), "s": Decimal(1),
    "ms": Decimal("0.001"), "us": Decimal("0.000001"), "µs": Decimal("0.000001"),
    "ns": Decimal("0.000000001"),
}
_MESSAGE_RETRY_RE = re.compile(r"retry in ((?:(?:\d+(?:\.\d+)?)(?:h|ms|us|µs|ns|m|s))+)", re.I)
_MESSAGE_MODEL_RE = re.compile(r"\bmodel: ([A-Za-z0-9][A-Za-z0-9._-]{0,80})")
_MAX_DELAY = timedelta(days=7)
# A per-minute (or per-token) quota never lasts longer than this, whatever delay a report states:
# one forged or garbled retry delay must not take a project out for a week. Daily quota ends at
# the next Pacific midnight instead.
MAX_NON_DAILY = timedelta(hours=1)
_UNREGISTERED = "unregistered callers"


@dataclass(frozen=True)
class Signal:
    """What a failed call says.

    `exhausted_until`: for quota, when the project may be used for `model` again; for a
    transient failure, when Google asked to be retried (None if it did not say).
    `scope`: the strictest quota hit (day > tokens > minute), None when Google did not say.
    `retry_after`: the delay Google stated (RetryInfo or the message), None when it stated none.
    """

    kind: Kind
    model: str | None
    exhausted_until: datetime | None
    scope: Scope | None
    quota_ids: tuple[str, ...]
    retry_after: timedelta | None
    reason: str


def parse_retry_delay(text: str) -> timedelta:
    """Return the delay in a protobuf Duration ("26s", "28.02s") or Go form ("1m30s", "500ms").

    Raise ValueError if `text` is not such a duration or is absurdly long (over 7 days).
    """
    s = text.strip() if isinstance(text, str) else ""
    pos, total = 0, Decimal(0)
    for m in _DURATION_PART_RE.finditer(s):
        if m.start() != pos:
            break
        total += Decimal(m.group(1)) * _DURATION_SECONDS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise ValueError(f"not a duration: {_ident(s) or 'unreadable text'}")
    if total > Decimal(_MAX_DELAY.total_seconds()):
        raise ValueError("retry delay longer than 7 days")
    return timedelta(microseconds=int(total * 1_000_000))


def _ident(value: Any) -> str | None:
    """Return `value` if it is a short plain identifier that cannot be a key string, else None."""
    if not isinstance(value, str) or not _IDENT_RE.fullmatch(value):
        return None
    if "AIza" in value or value.startswith("AQ."):
        return None
    return value


MAX_BODY = 64 * 1024  # an error body from Google is a few KB


def read_body(raw: bytes | str | dict | list | None) -> Any:
    """Return an error body as JSON when it is JSON, else as (bounded) text, else None.

    The one reader of bodies for the client library, the CLI and the daemon: bytes that are not
    UTF-8, JSON nested deeper than the parser goes, or text that is not JSON never raise.
    """
    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw[:MAX_BODY]).decode("utf-8", errors="replace")
    if isinstance(raw, str):
        text = raw[:MAX_BODY]
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            return text
    return raw


def _error_object(body: bytes | str | dict | list | None) -> dict | None:
    """Return the `error` object of a Status body, or None when there is no readable one."""
    body = read_body(body)
    if isinstance(body, list):  # a streamed response wraps the Status in an array
        body = next((item for item in body if isinstance(item, dict)), None)
    if not isinstance(body, dict):
        return None
    err = body.get("error", body)
    return err if isinstance(err, dict) else None


def google_error(body: Any) -> dict | None:
    """Return the error object of `body` if it looks like Google's (an `error` with a code, a
    status or a message), else None: valid JSON of some other shape is not a Google error."""
    err = _error_object(body)
    if err is None:
        return None
    has_code = isinstance(err.get("code"), int) and not isinstance(err.get("code"), bool)
    if has_code or isinstance(err.get("status"), str) or isinstance(err.get("message"), str):
        return err
    return None


def body_status(body: Any) -> int | None:
    """The HTTP status a Google error body states (`error.code`), when it states a valid one."""
    err = google_error(body)
    code = err.get("code") if err else None
    if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
        return code
    return None


def _details(err: dict, type_suffix: str) -> list[dict]:
    details = err.get("details")
    if not isinstance(details, list):
        return []
    return [
        d for d in details
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("google.rpc." + type_suffix)
    ]


def _reasons(err: dict) -> list[str]:
    """ErrorInfo reasons, plus the older `errors[].reason` list some front ends still send."""
    found = [d.get("reason") for d in _details(err, "ErrorInfo")]
    legacy = err.get("errors")
    if isinstance(legacy, list):
        found += [e.get("reason") for e in legacy if isinstance(e, dict)]
    return [r for r in (_ident(x) for x in found) if r]


def _message(err: dict) -> str:
    msg = err.get("message")
    return msg if isinstance(msg, str) else ""


def _stated_delay(err: dict) -> timedelta | None:
    """RetryInfo.retryDelay if readable, else "Please retry in …" from the message, else None."""
    for info in _details(err, "RetryInfo"):
        try:
            return parse_retry_delay(info.get("retryDelay"))
        except ValueError:
            continue
    m = _MESSAGE_RETRY_RE.search(_message(err))
    if m:
        try:
            return parse_retry_delay(m.group(1))
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class _Violation:
    quota_id: str | None
    scope: Scope
    label: str
    model: str | None
    value: int | None


def _classify(quota_id: str | None, metric: str | None) -> tuple[Scope, str]:
    """Map a quota id/metric to its scope; an id never seen before counts as per-minute."""
    text = f"{quota_id or ''} {metric or ''}".lower()
    if "perday" in text or "per_day" in text or "daily" in text:
        return "day", "requests per day" if "token" not in text else "input tokens per day"
    if "token" in text:
        return "tokens", "input tokens per minute"
    if "perminute" in text or "per_minute" in text:
        return "minute", "requests per minute"
    return "minute", f"quota {quota_id or metric or 'of unknown kind'}"


def _int_or_none(value: Any) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _violations(err: dict) -> list[_Violation]:
    out = []
    for failure in _details(err, "QuotaFailure"):
        items = failure.get("violations")
        for v in items if isinstance(items, list) else []:
            if not isinstance(v, dict):
                continue
            qid, metric = _ident(v.get("quotaId")), _ident(v.get("quotaMetric"))
            dims = v.get("quotaDimensions")
            model = _ident(dims.get("model")) if isinstance(dims, dict) else None
            scope, label = _classify(qid, metric)
            out.append(_Violation(qid or metric, scope, label, model, _int_or_none(v.get("quotaValue"))))
    if out:
        return out
    for info in _details(err, "ErrorInfo"):  # legacy: ErrorInfo{RATE_LIMIT_EXCEEDED, metadata}
        meta = info.get("metadata")
        if str(info.get("reason", "")).upper() not in _QUOTA_REASONS or not isinstance(meta, dict):
            continue
        qid, metric = _ident(meta.get("quota_limit")), _ident(meta.get("quota_metric"))
        if qid is None and metric is None:
            continue
        scope, label = _classify(qid, metric)
        out.append(_Violation(qid or metric, scope, label, _ident(meta.get("model")),
                              _int_or_none(meta.get("quota_limit_value"))))
    return out


def _quota_signal(err: dict | None, now: datetime, default_model: str | None) -> Signal:
    stated = _stated_delay(err) if err else None
    violations = _violations(err) if err else []
    message_model = _MESSAGE_MODEL_RE.search(_message(err)) if err else None
    model = next((v.model for v in violations if v.model), None)
    model = model or (_ident(message_model.group(1)) if message_model else None) or default_model
    minute_until = now + min(stated or DEFAULT_RETRY, MAX_NON_DAILY)
    if not violations:
        what = "quota exhausted (Google named no limit)" if err else "quota exhausted (unreadable body)"
        return Signal("quota", model, minute_until, None, (), stated,
                      f"{what}{' for ' + model if model else ''}, until {utc_clock(minute_until, now)}")
    until = max(next_pacific_midnight(now) if v.scope == "day" else minute_until for v in violations)
    scope = max((v.scope for v in violations), key=_STRICTNESS.__getitem__)
    ids = tuple(dict.fromkeys(v.quota_id for v in violations if v.quota_id))
    hits = ", ".join(dict.fromkeys(
        v.label + (f" (limit {v.value})" if v.value is not None else "") for v in violations
    ))
    target = f" for {model}" if model else ""
    return Signal("quota", model, until, scope, ids, stated,
                  f"quota exhausted{target}: {hits}; until {utc_clock(until, now)}")


def parse_error(
    http_status: int,
    body: bytes | str | dict | list | None,
    now: datetime,
    default_model: str | None = None,
) -> Signal:
    """Classify a failed Gemini call.

    A 429 (or a RESOURCE_EXHAUSTED body) is always quota, never a key problem: per-day
    quota lasts until the next Pacific midnight, per-minute quota (requests or tokens) until
    now + the stated retry delay, or 60 s when none is stated or the body is unreadable.
    5xx and 408 are transient. API_KEY_INVALID, ACCESS_TOKEN_TYPE_UNSUPPORTED, an expired
    or leaked key and any other 401 are `invalid_key`; a 403 naming a suspension or a blocked
    key is `suspended`; everything else is `other`.
    """
    now = require_aware(now).astimezone(timezone.utc)
    default_model = _ident(default_model)
    err = _error_object(body)
    grpc = _ident(err.get("status")) if err else None
    reasons = _reasons(err) if err else []
    upper = {r.upper() for r in reasons}
    message = _message(err).lower() if err else ""
    code = f"HTTP {http_status}" + (f" {grpc}" if grpc else "")

    if http_status >= 500 or http_status == 408:
        stated = _stated_delay(err) if err else None
        until = now + stated if stated else None
        return Signal("transient", default_model, until, None, (), stated,
                      f"{code}: failure on Google's side, worth retrying")
    if http_status == 429 or grpc == "RESOURCE_EXHAUSTED" or upper & _QUOTA_REASONS:
        return _quota_signal(err, now, default_model)
    key_reason = next((r for r in reasons if r.upper() in _INVALID_KEY_REASONS), None)
    if key_reason or "api key not valid" in message or "api key expired" in message:
        return Signal("invalid_key", default_model, None, None, (), None,
                      f"{code}: key rejected ({key_reason or 'API key not valid'})")
    if "reported as leaked" in message:
        return Signal("invalid_key", default_model, None, None, (), None,
                      f"{code}: key blocked by Google as leaked")
    if http_status == 401:
        return Signal("invalid_key", default_model, None, None, (), None,
                      f"{code}: key not accepted ({reasons[0] if reasons else 'unauthenticated'})")
    if http_status == 403 and _UNREGISTERED in message:
        # No key reached Google at all: the caller sent none. Nothing is wrong with any key.
        return Signal("no_key", default_model, None, None, (), None,
                      f"{code}: the call carried no API key (Google: unregistered caller); "
                      "the reporting program did not send its key")
    if "API_KEY_SERVICE_BLOCKED" in upper:
        return Signal("invalid_key", default_model, None, None, (), None,
                      f"{code}: the key's API restrictions do not allow the Gemini API "
                      "(API_KEY_SERVICE_BLOCKED): add generativelanguage.googleapis.com to them")
    if http_status == 403:
        blocked = next((r for r in reasons if r.upper() in _SUSPENDED_REASONS), None)
        if blocked or "suspended" in message:
            return Signal("suspended", default_model, None, None, (), None,
                          f"{code}: project or key suspended ({blocked or 'suspension reported'})")
    detail = f" ({reasons[0]})" if reasons else ""
    return Signal("other", default_model, None, None, (), None, f"{code}{detail}: request refused")
