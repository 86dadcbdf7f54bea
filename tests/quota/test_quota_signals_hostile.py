"""The error-body classifier against bodies nobody should send: any status and body give a
Signal (never an exception), non-daily exhaustion is capped, and the 403s that are not about a
key's quota are said for what they are."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from hypothesis import example, given, settings
from hypothesis import strategies as st

from keyward.quota.signals import MAX_NON_DAILY, body_status, google_error, parse_error
from support.fakes import fake_auth_key

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)
KEY = fake_auth_key()

leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                 st.floats(allow_nan=False), st.text(max_size=20),
                 st.sampled_from([KEY, "RESOURCE_EXHAUSTED", "API_KEY_INVALID", "167h", "600000s",
                                  "type.googleapis.com/google.rpc.RetryInfo",
                                  "type.googleapis.com/google.rpc.QuotaFailure",
                                  "GenerateRequestsPerDayPerProjectPerModel"]))
bodies = st.recursive(leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["error", "code", "status", "message", "details", "@type",
                                     "retryDelay", "violations", "quotaId", "reason"]), inner,
                    max_size=4)), max_leaves=12)


@settings(max_examples=400, deadline=None, database=None)
@given(st.integers(min_value=100, max_value=599), st.one_of(bodies, st.binary(max_size=100)))
@example(429, {"error": {"code": 429, "details": [
    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "601200s"}]}})
@example(429, b"[" * 100_000)
@example(400, b"\xff\xfe")
def test_any_body_gives_a_signal_and_bounded_exhaustion(status, body):
    signal = parse_error(status, body, NOW)
    assert KEY not in signal.reason
    if signal.kind == "quota" and signal.scope != "day":
        assert signal.exhausted_until <= NOW + MAX_NON_DAILY
    body_status(body)
    google_error(body)


def _status(code, status, message, reason=None):
    err = {"code": code, "status": status, "message": message}
    if reason:
        err["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                           "domain": "googleapis.com"}]
    return {"error": err}


def test_retry_delay_of_a_week_exhausts_for_at_most_an_hour():
    body = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "x", "details": [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "601200s"}]}}
    signal = parse_error(429, body, NOW)
    assert signal.kind == "quota" and signal.exhausted_until == NOW + timedelta(hours=1)


def test_api_key_service_blocked_says_the_restrictions_block_gemini():
    body = _status(403, "PERMISSION_DENIED", "Requests to this API are blocked.",
                   "API_KEY_SERVICE_BLOCKED")
    signal = parse_error(403, body, NOW)
    assert "API restrictions" in signal.reason and "suspended" not in signal.reason


def test_unregistered_caller_403_takes_no_key_out():
    body = _status(403, "PERMISSION_DENIED",
                   "Method doesn't allow unregistered callers (callers without established "
                   "identity). Please use API Key or other form of API consumer identity to call "
                   "this API.")
    signal = parse_error(403, body, NOW)
    assert signal.kind == "no_key" and "no API key" in signal.reason


def test_streamed_array_wrapped_invalid_key_is_an_invalid_key_not_quota():
    body = [_status(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                    "API_KEY_INVALID")]
    assert body_status(body) == 400
    assert parse_error(body_status(body), json.dumps(body), NOW).kind == "invalid_key"
    assert parse_error(401, [_status(401, "UNAUTHENTICATED", "x")], NOW).kind == "invalid_key"


def test_json_of_another_shape_is_not_a_google_error():
    assert google_error({"detail": "rate limited"}) is None
    assert google_error([1, 2]) is None and google_error(5) is None
