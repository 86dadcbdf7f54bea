"""Gemini (Generative Language) through plain HTTP: key checks, quotas and their 429 bodies."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from emulator_helpers import ALPHA, BETA, LIMITS, FakeClock, details_of, http

from keyward.emulator import Emulator
from keyward.emulator.clock import pacific_day_start


@pytest.fixture
def auth_key(emu):
    return emu.create_manual_key(ALPHA[0])["keyString"]


@pytest.mark.parametrize("version", ["v1", "v1beta"])
@pytest.mark.parametrize("via", ["header", "query"])
def test_generate_when_auth_key_valid_answers_with_usage(gemini, auth_key, version, via):
    status, body = gemini(auth_key, text="x" * 10, version=version, via=via)
    assert status == 200
    usage = body["usageMetadata"]
    assert usage["promptTokenCount"] == 3  # ceil(10 / 4)
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    assert body["candidates"][0]["content"]["parts"][0]["text"]


def test_count_tokens_when_called_does_not_use_quota(gemini, auth_key):
    for _ in range(LIMITS["gemini-2.5-flash"]["rpm"] + 1):
        status, body = gemini(auth_key, text="abcdefgh", rpc="countTokens")
        assert status == 200 and body["totalTokens"] == 2
    assert gemini(auth_key)[0] == 200


def test_models_list_when_key_valid_names_models(emu, auth_key):
    status, body = http(f"{emu.url}/v1beta/models", headers={"x-goog-api-key": auth_key})
    assert status == 200
    assert "models/gemini-2.5-flash" in [m["name"] for m in body["models"]]


def test_generate_when_model_unknown_is_404(gemini, auth_key):
    status, body = gemini(auth_key, model="gemini-0-nonexistent")
    assert status == 404 and body["error"]["status"] == "NOT_FOUND"


def test_generate_when_key_unknown_is_api_key_invalid(gemini):
    status, body = gemini("AQ." + "z" * 40)
    assert status == 400
    assert body["error"]["status"] == "INVALID_ARGUMENT"
    info = details_of(body, "ErrorInfo")[0]
    assert info["reason"] == "API_KEY_INVALID" and info["domain"] == "googleapis.com"
    assert info["metadata"]["service"] == "generativelanguage.googleapis.com"


def test_generate_when_key_deleted_is_api_key_invalid(emu, gemini, api, auth_key):
    name = emu.keys(ALPHA[0])[0]["name"]
    api("apikeys", "v2").projects().locations().keys().delete(name=name).execute()
    status, body = gemini(auth_key)
    assert status == 400
    assert details_of(body, "ErrorInfo")[0]["reason"] == "API_KEY_INVALID"


def test_generate_when_standard_key_is_access_token_type_unsupported(emu, gemini):
    key = emu.create_manual_key(ALPHA[0], kind="standard")["keyString"]
    status, body = gemini(key)
    assert status == 401 and body["error"]["status"] == "UNAUTHENTICATED"
    assert details_of(body, "ErrorInfo")[0]["reason"] == "ACCESS_TOKEN_TYPE_UNSUPPORTED"
    assert not emu.key_string_valid(key)
    emu.reject_standard_keys = False
    assert gemini(key)[0] == 200 and emu.key_string_valid(key)


def test_generate_when_key_restricted_to_other_api_is_service_blocked(emu, gemini, api):
    keys = api("apikeys", "v2").projects().locations().keys()
    op = keys.create(parent=f"projects/{ALPHA[0]}/locations/global", keyId="maps-only", body={
        "serviceAccountEmail": "sa@alpha-proj.iam.gserviceaccount.com",
        "restrictions": {"apiTargets": [{"service": "maps.googleapis.com"}]}}).execute()
    while not op.get("done"):  # the key reads as 404 until its operation is done
        op = api("apikeys", "v2").operations().get(name=op["name"]).execute()
    secret = keys.getKeyString(
        name=f"projects/{ALPHA[1]}/locations/global/keys/maps-only").execute()["keyString"]
    assert op["name"]
    status, body = gemini(secret)
    assert status == 403
    assert details_of(body, "ErrorInfo")[0]["reason"] == "API_KEY_SERVICE_BLOCKED"


def test_generate_when_gemini_disabled_in_project_is_service_disabled(emu, gemini, auth_key):
    emu.disable_service(ALPHA[0], "generativelanguage.googleapis.com")
    status, body = gemini(auth_key)
    assert status == 403
    assert details_of(body, "ErrorInfo")[0]["reason"] == "SERVICE_DISABLED"


def test_generate_when_no_key_is_permission_denied(emu):
    status, body = http(f"{emu.url}/v1beta/models/gemini-2.5-flash:generateContent", "POST",
                        {"contents": [{"parts": [{"text": "hi"}]}]})
    assert status == 403 and body["error"]["status"] == "PERMISSION_DENIED"


def test_generate_when_rpm_exceeded_is_429_shaped_like_gemini(emu, gemini, auth_key):
    for _ in range(3):
        assert gemini(auth_key, text="a")[0] == 200
    status, body = gemini(auth_key, text="a")
    assert status == 429
    error = body["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert error["message"].startswith("You exceeded your current quota, please check your plan")
    assert "Please retry in " in error["message"]
    kinds = [d["@type"].rsplit(".", 1)[1] for d in error["details"]]
    assert kinds == ["Help", "QuotaFailure", "RetryInfo"]
    violation = details_of(body, "QuotaFailure")[0]["violations"][0]
    assert violation == {
        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
        "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
        "quotaValue": "3"}
    delay = int(details_of(body, "RetryInfo")[0]["retryDelay"].rstrip("s"))
    assert 50 <= delay <= 60


def test_rpm_when_minute_passes_allows_again(emu, gemini, auth_key):
    for _ in range(3):
        gemini(auth_key, text="a")
    assert gemini(auth_key, text="a")[0] == 429
    emu.advance(61)
    assert gemini(auth_key, text="a")[0] == 200


def test_quota_when_two_keys_of_one_project_share_it(emu, gemini, auth_key):
    other = emu.create_manual_key(ALPHA[0])["keyString"]
    for _ in range(3):
        assert gemini(auth_key, text="a")[0] == 200
    assert gemini(other, text="a")[0] == 429
    beta_key = emu.create_manual_key(BETA[0])["keyString"]
    assert gemini(beta_key, text="a")[0] == 200


def test_quota_when_models_differ_counts_each_model_apart(gemini, auth_key):
    for _ in range(3):
        gemini(auth_key, text="a")
    assert gemini(auth_key, model="gemini-2.5-pro", text="a")[0] == 200


def test_generate_when_tpm_exceeded_is_429_token_quota(gemini, auth_key):
    assert gemini(auth_key, text="x" * 120)[0] == 200  # 30 tokens of 40
    status, body = gemini(auth_key, text="x" * 60)  # 15 more
    assert status == 429
    violation = details_of(body, "QuotaFailure")[0]["violations"][0]
    assert violation["quotaId"] == "GenerateContentInputTokensPerModelPerMinute-FreeTier"
    assert violation["quotaMetric"].endswith("generate_content_free_tier_input_token_count")
    assert violation["quotaValue"] == "40"


def test_rpd_when_exceeded_is_429_until_pacific_midnight():
    # 23:00 Pacific on a winter day: the day quota resets one hour later.
    start = datetime(2026, 1, 15, 23, 0, tzinfo=ZoneInfo("America/Los_Angeles")).timestamp()
    clock = FakeClock(start)
    emu = Emulator(clock=clock).start()
    try:
        emu.add_project("solo", "333", limits={"gemini-2.5-flash": {"rpd": 2}})
        key = emu.create_manual_key("solo")["keyString"]
        url = f"{emu.url}/v1beta/models/gemini-2.5-flash:generateContent"
        body = {"contents": [{"parts": [{"text": "hi"}]}]}
        headers = {"x-goog-api-key": key}
        assert http(url, "POST", body, headers)[0] == 200
        clock.now += 600
        assert http(url, "POST", body, headers)[0] == 200
        clock.now += 600
        status, error = http(url, "POST", body, headers)
        assert status == 429
        violation = details_of(error, "QuotaFailure")[0]["violations"][0]
        assert violation["quotaId"] == "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
        delay = int(details_of(error, "RetryInfo")[0]["retryDelay"].rstrip("s"))
        assert delay == 2400  # 40 minutes to Pacific midnight
        emu.advance(2399)
        assert http(url, "POST", body, headers)[0] == 429
        emu.advance(2)
        assert http(url, "POST", body, headers)[0] == 200
    finally:
        emu.stop()


def test_pacific_day_start_when_dst_begins_is_local_midnight():
    # 2026-03-08 is the day US clocks spring forward; midnight is still 08:00 UTC that day.
    noon = datetime(2026, 3, 8, 12, 0, tzinfo=ZoneInfo("America/Los_Angeles")).timestamp()
    expected = datetime(2026, 3, 8, 0, 0, tzinfo=ZoneInfo("America/Los_Angeles")).timestamp()
    assert pacific_day_start(noon) == expected
