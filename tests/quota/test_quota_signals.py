"""Classification of Gemini error bodies, built the way Google sends them."""

from __future__ import annotations

import json
import random
import secrets
import string
from datetime import datetime, timedelta, timezone

import pytest

from keyward.quota.signals import parse_error, parse_retry_delay

UTC = timezone.utc
NOW = datetime(2026, 3, 8, 12, 0, 0, tzinfo=UTC)  # spring-forward day: next midnight 07:00 UTC
NEXT_MIDNIGHT = datetime(2026, 3, 9, 7, 0, tzinfo=UTC)
MODEL = "gemini-2.5-flash"
RPM_ID = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
RPD_ID = "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
TPM_ID = "GenerateContentInputTokensPerModelPerMinute-FreeTier"
HELP = {"@type": "type.googleapis.com/google.rpc.Help",
        "links": [{"description": "Learn more about Gemini API quotas",
                   "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]}


def fake_standard_key() -> str:
    alphabet = string.ascii_letters + string.digits + "_-"
    return "AIza" + "".join(random.choice(alphabet) for _ in range(35))


def violation(quota_id: str, value: str | None = "10", model: str = MODEL, tokens: bool = False) -> dict:
    metric = ("generativelanguage.googleapis.com/generate_content_free_tier_input_token_count"
              if tokens else "generativelanguage.googleapis.com/generate_content_free_tier_requests")
    v = {"quotaMetric": metric, "quotaId": quota_id,
         "quotaDimensions": {"location": "global", "model": model}}
    if value is not None:
        v["quotaValue"] = value
    return v


def quota_body(*violations: dict, retry: str | None = "26s", message_retry: str | None = "28.02s",
               help_first: bool = True) -> bytes:
    message = "You exceeded your current quota, please check your plan and billing details."
    if message_retry:
        message += f" Please retry in {message_retry}."
    details = [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": list(violations)}]
    if retry:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry})
    details = [HELP, *details] if help_first else [*details, HELP]
    return json.dumps({"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED",
                                 "details": details}}, indent=2).encode()


def status_body(code: int, status: str, message: str, reason: str | None = None,
                metadata: dict | None = None) -> str:
    details = []
    if reason:
        details.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                        "domain": "googleapis.com", "metadata": metadata or {}})
    return json.dumps({"error": {"code": code, "message": message, "status": status, "details": details}})


# --- quota -----------------------------------------------------------------------------------

def test_parse_error_per_minute_429_uses_retry_info_delay():
    s = parse_error(429, quota_body(violation(RPM_ID)), NOW)
    assert s.kind == "quota" and s.scope == "minute" and s.model == MODEL
    assert s.exhausted_until == NOW + timedelta(seconds=26)
    assert s.retry_after == timedelta(seconds=26)
    assert s.quota_ids == (RPM_ID,)
    assert "requests per minute (limit 10)" in s.reason and MODEL in s.reason


def test_parse_error_per_day_429_lasts_until_next_pacific_midnight():
    s = parse_error(429, quota_body(violation(RPD_ID, "250")), NOW)
    assert s.kind == "quota" and s.scope == "day"
    assert s.exhausted_until == NEXT_MIDNIGHT
    assert "requests per day (limit 250)" in s.reason and "07:00 UTC" in s.reason


def test_parse_error_per_day_429_on_fall_back_day_waits_for_0800_utc():
    now = datetime(2026, 11, 1, 20, 0, tzinfo=UTC)
    s = parse_error(429, quota_body(violation(RPD_ID)), now)
    assert s.exhausted_until == datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def test_parse_error_tokens_per_minute_429_has_tokens_scope():
    s = parse_error(429, quota_body(violation(TPM_ID, "250000", tokens=True), retry="3s"), NOW)
    assert s.scope == "tokens" and s.exhausted_until == NOW + timedelta(seconds=3)
    assert "input tokens per minute (limit 250000)" in s.reason


def test_parse_error_paid_tier_token_quota_id_is_tokens_scope():
    s = parse_error(429, quota_body(violation("GenerateContentPaidTierInputTokensPerModelPerMinute",
                                              tokens=True)), NOW)
    assert s.scope == "tokens"


def test_parse_error_several_violations_latest_until_and_strictest_scope_win():
    body = quota_body(violation(TPM_ID, tokens=True), violation(RPM_ID), violation(RPD_ID, "250"))
    s = parse_error(429, body, NOW)
    assert s.scope == "day" and s.exhausted_until == NEXT_MIDNIGHT
    assert s.quota_ids == (TPM_ID, RPM_ID, RPD_ID)


def test_parse_error_tokens_and_minute_violations_name_tokens_scope():
    s = parse_error(429, quota_body(violation(RPM_ID), violation(TPM_ID, tokens=True)), NOW)
    assert s.scope == "tokens" and s.exhausted_until == NOW + timedelta(seconds=26)


def test_parse_error_missing_quota_value_omits_limit_from_reason():
    s = parse_error(429, quota_body(violation(RPM_ID, value=None)), NOW)
    assert s.kind == "quota" and s.scope == "minute" and "limit" not in s.reason


@pytest.mark.parametrize("help_first", [True, False])
def test_parse_error_help_detail_position_does_not_matter(help_first):
    s = parse_error(429, quota_body(violation(RPM_ID), help_first=help_first, message_retry=None), NOW)
    assert (s.scope, s.exhausted_until, s.model) == ("minute", NOW + timedelta(seconds=26), MODEL)


def test_parse_error_retry_only_in_message_uses_message_delay():
    s = parse_error(429, quota_body(violation(RPM_ID), retry=None, message_retry="28.02s"), NOW)
    assert s.exhausted_until == NOW + timedelta(seconds=28.02)
    assert s.retry_after == timedelta(seconds=28, microseconds=20000)


def test_parse_error_no_delay_anywhere_waits_60_seconds():
    s = parse_error(429, quota_body(violation(RPM_ID), retry=None, message_retry=None), NOW)
    assert s.exhausted_until == NOW + timedelta(seconds=60) and s.retry_after is None


def test_parse_error_model_missing_from_dimensions_falls_back_to_default_model():
    v = violation(RPM_ID)
    del v["quotaDimensions"]["model"]
    s = parse_error(429, quota_body(v), NOW, default_model="gemini-2.0-flash")
    assert s.model == "gemini-2.0-flash"


def test_parse_error_legacy_error_info_rate_limit_exceeded_is_minute_quota():
    body = status_body(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).",
                       "RATE_LIMIT_EXCEEDED",
                       {"service": "generativelanguage.googleapis.com", "consumer": "projects/123",
                        "quota_metric": "generativelanguage.googleapis.com/generate_content_requests",
                        "quota_limit": "GenerateContentRequestsPerMinutePerProjectPerRegion",
                        "quota_limit_value": "60", "quota_location": "us-east1"})
    s = parse_error(429, body, NOW, default_model=MODEL)
    assert s.kind == "quota" and s.scope == "minute" and s.model == MODEL
    assert s.quota_ids == ("GenerateContentRequestsPerMinutePerProjectPerRegion",)
    assert s.exhausted_until == NOW + timedelta(seconds=60)
    assert "limit 60" in s.reason


def test_parse_error_legacy_per_day_metric_lasts_until_pacific_midnight():
    body = status_body(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted.", "RATE_LIMIT_EXCEEDED",
                       {"quota_metric": "generativelanguage.googleapis.com/generate_requests_per_model_per_day",
                        "quota_limit_value": "1500"})
    s = parse_error(429, body, NOW)
    assert s.scope == "day" and s.exhausted_until == NEXT_MIDNIGHT


def test_parse_error_429_without_details_is_quota_for_60_seconds():
    body = json.dumps({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).",
                                 "status": "RESOURCE_EXHAUSTED"}})
    s = parse_error(429, body, NOW, default_model=MODEL)
    assert (s.kind, s.scope, s.model) == ("quota", None, MODEL)
    assert s.exhausted_until == NOW + timedelta(seconds=60)


def test_parse_error_body_wrapped_in_array_is_read():
    inner = json.loads(quota_body(violation(RPD_ID)))
    s = parse_error(429, [inner], NOW)
    assert s.scope == "day"
    assert parse_error(429, json.dumps([inner]), NOW).scope == "day"


@pytest.mark.parametrize("body", [b"<html><body>Too Many Requests</body></html>", b"\xff\xfe\x00garbage",
                                  "", None, "{", "[]", "42", {"error": "nope"},
                                  json.dumps({"error": {"details": "x"}})])
def test_parse_error_garbage_429_body_is_quota_for_60_seconds(body):
    s = parse_error(429, body, NOW)
    assert s.kind == "quota" and s.exhausted_until == NOW + timedelta(seconds=60)


def test_parse_error_malformed_violations_are_skipped_not_fatal():
    body = json.dumps({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": ["x", 3, None]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "soon"}]}})
    s = parse_error(429, body, NOW)
    assert s.kind == "quota" and s.exhausted_until == NOW + timedelta(seconds=60)


def test_parse_error_quota_429_naming_api_key_invalid_is_still_quota():
    body = json.loads(quota_body(violation(RPM_ID)))
    body["error"]["details"].append({"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                     "reason": "API_KEY_INVALID"})
    assert parse_error(429, body, NOW).kind == "quota"


# --- keys and projects -----------------------------------------------------------------------

def test_parse_error_api_key_invalid_is_invalid_key():
    body = status_body(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                       "API_KEY_INVALID", {"service": "generativelanguage.googleapis.com"})
    s = parse_error(400, body, NOW, default_model=MODEL)
    assert s.kind == "invalid_key" and "API_KEY_INVALID" in s.reason
    assert s.exhausted_until is None and s.model == MODEL


def test_parse_error_standard_key_no_longer_accepted_is_invalid_key():
    body = status_body(401, "UNAUTHENTICATED", "API keys are not supported by this API.",
                       "ACCESS_TOKEN_TYPE_UNSUPPORTED")
    s = parse_error(401, body, NOW)
    assert s.kind == "invalid_key" and "ACCESS_TOKEN_TYPE_UNSUPPORTED" in s.reason


def test_parse_error_any_401_is_invalid_key():
    assert parse_error(401, b"", NOW).kind == "invalid_key"


def test_parse_error_leaked_key_403_is_invalid_key():
    body = status_body(403, "PERMISSION_DENIED", "Your API key was reported as leaked. Please use another API key.")
    assert parse_error(403, body, NOW).kind == "invalid_key"


@pytest.mark.parametrize("reason", ["CONSUMER_SUSPENDED", "PROJECT_SUSPENDED"])
def test_parse_error_403_suspension_reasons_are_suspended(reason):
    body = status_body(403, "PERMISSION_DENIED", "Permission denied.", reason)
    s = parse_error(403, body, NOW)
    assert s.kind == "suspended" and reason in s.reason


def test_parse_error_403_suspended_message_without_reason_is_suspended():
    body = status_body(403, "PERMISSION_DENIED", "Permission denied: Consumer 'projects/1' has been suspended.")
    assert parse_error(403, body, NOW).kind == "suspended"


def test_parse_error_403_service_disabled_is_other():
    body = status_body(403, "PERMISSION_DENIED", "Generative Language API has not been used in project 1",
                       "SERVICE_DISABLED")
    s = parse_error(403, body, NOW)
    assert s.kind == "other" and "SERVICE_DISABLED" in s.reason


def test_parse_error_plain_400_is_other():
    body = status_body(400, "FAILED_PRECONDITION", "User location is not supported for the API use.")
    s = parse_error(400, body, NOW)
    assert s.kind == "other" and "FAILED_PRECONDITION" in s.reason


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_parse_error_server_errors_are_transient(status):
    s = parse_error(status, status_body(status, "UNAVAILABLE", "The model is overloaded."), NOW)
    assert s.kind == "transient" and s.exhausted_until is None


def test_parse_error_transient_with_retry_info_carries_delay():
    body = json.dumps({"error": {"code": 503, "status": "UNAVAILABLE", "details": [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "5s"}]}})
    s = parse_error(503, body, NOW)
    assert s.retry_after == timedelta(seconds=5) and s.exhausted_until == NOW + timedelta(seconds=5)


def test_parse_error_when_now_is_naive_raises_value_error():
    with pytest.raises(ValueError):
        parse_error(429, None, datetime(2026, 1, 1))


# --- nothing from the body leaks into the signal -----------------------------------------------

@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 503])
def test_parse_error_body_echoing_a_key_never_puts_it_in_the_signal(status):
    keys = [fake_standard_key(), "AQ." + secrets.token_urlsafe(32)]
    for key in keys:
        v = violation(f"{key}", model=key)
        body = json.dumps({"error": {"code": status, "status": key, "message": f"bad key {key} retry in 2s",
                                     "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                                  "reason": key},
                                                 {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                                                  "violations": [v]}]}})
        s = parse_error(status, body, NOW, default_model=key)
        assert key not in repr(s)
        assert key[4:] not in repr(s) and key[3:] not in repr(s)


# --- retry delays ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("26s", timedelta(seconds=26)),
    ("1.5s", timedelta(seconds=1.5)),
    ("28.02s", timedelta(seconds=28, microseconds=20000)),
    ("0s", timedelta(0)),
    ("10.673410956s", timedelta(seconds=10, microseconds=673410)),
    ("1m30s", timedelta(seconds=90)),
    ("500ms", timedelta(milliseconds=500)),
    (" 26s ", timedelta(seconds=26)),
])
def test_parse_retry_delay_when_well_formed_returns_timedelta(text, expected):
    assert parse_retry_delay(text) == expected


@pytest.mark.parametrize("text", ["", "s", "26", "-1s", "26 s", "26sec", "abc", "1e3s", "9" * 40 + "s"])
def test_parse_retry_delay_when_malformed_raises_value_error(text):
    with pytest.raises(ValueError):
        parse_retry_delay(text)
