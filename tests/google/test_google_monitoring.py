from datetime import datetime, timedelta, timezone

import pytest

from keyward.errors import ApiDisabled, PermissionMissing, Transient, UsageError
from keyward.google import gemini, monitoring
from keyward.google.monitoring import MonitoringClient

PROJECT = "alpha"
MODEL = "gemini-2.5-flash"
GENERATE = "google.ai.generativelanguage.v1beta.GenerativeService.GenerateContent"


@pytest.fixture
def client(emu, fake_sleep):
    emu.monitoring_lag_seconds = 0
    return MonitoringClient(sleep=fake_sleep, retry_budget=60.0)


def _now(emu) -> datetime:
    return datetime.fromtimestamp(emu.now(), timezone.utc)


def _window(emu):
    now = _now(emu)
    return now - timedelta(minutes=30), now + timedelta(minutes=2)


def _traffic(emu):
    """Two calls with key a and one with key b in one minute, one more with a a minute later."""
    a, b = emu.create_manual_key(PROJECT), emu.create_manual_key(PROJECT)
    gemini.generate_content(a["keyString"], MODEL, "one two three")
    gemini.generate_content(a["keyString"], MODEL, "four")
    gemini.generate_content(b["keyString"], MODEL, "five six")
    first_minute = _now(emu).replace(second=0, microsecond=0)
    emu.advance(60)
    gemini.generate_content(a["keyString"], MODEL, "seven")
    return a, b, first_minute


def test_request_counts_groups_by_key_method_code_per_minute(emu, client):
    a, b, minute = _traffic(emu)
    points = client.request_counts(PROJECT, *_window(emu))
    generate = [p for p in points if p.method == GENERATE]
    got = {(p.minute, p.credential_id, p.response_code): p.count for p in generate}
    assert got == {
        (minute, f"apikey:{a['uid']}", "200"): 2,
        (minute, f"apikey:{b['uid']}", "200"): 1,
        (minute + timedelta(minutes=1), f"apikey:{a['uid']}", "200"): 1,
    }
    assert all(isinstance(p.count, int) for p in points)
    assert points == sorted(points, key=lambda p: (p.minute, p.credential_id, p.method,
                                                   p.response_code))


def test_request_counts_counts_rejected_calls_by_code(emu, client):
    emu.add_project("tiny", "222222222222", limits={MODEL: {"rpm": 1, "tpm": 100000, "rpd": 100}})
    key = emu.create_manual_key("tiny")
    gemini.generate_content(key["keyString"], MODEL, "ok")
    with pytest.raises(gemini.GeminiHttpError):
        gemini.generate_content(key["keyString"], MODEL, "too many")
    codes = {p.response_code: p.count for p in client.request_counts("tiny", *_window(emu))
             if p.method == GENERATE}
    assert codes == {"200": 1, "429": 1}


def test_request_counts_when_many_pages_returns_all(emu, client, monkeypatch):
    _traffic(emu)
    everything = client.request_counts(PROJECT, *_window(emu))
    monkeypatch.setattr(monitoring, "PAGE_SIZE", 1)
    assert client.request_counts(PROJECT, *_window(emu)) == everything
    assert len(everything) >= 3


def test_quota_usage_sums_requests_and_tokens_per_minute(emu, client):
    _, _, minute = _traffic(emu)
    points = client.quota_usage(PROJECT, *_window(emu))
    by = {(p.minute, p.quota_metric.rsplit("/", 1)[-1]): p.value for p in points}
    requests = {m: v for (m, q), v in by.items() if "requests" in q}
    tokens = {m: v for (m, q), v in by.items() if "token" in q}
    assert requests == {minute: 3, minute + timedelta(minutes=1): 1}
    assert tokens[minute] > tokens[minute + timedelta(minutes=1)] > 0


def test_request_counts_when_window_has_no_whole_minute_raises_usage_error(emu, client):
    now = _now(emu).replace(second=10)
    with pytest.raises(UsageError, match="no whole minute"):
        client.request_counts(PROJECT, now, now + timedelta(seconds=30))


def test_request_counts_when_denied_names_permission_and_role(emu, client):
    emu.deny_permission(PROJECT, "monitoring.timeSeries.list")
    with pytest.raises(PermissionMissing) as info:
        client.request_counts(PROJECT, *_window(emu))
    assert "monitoring.timeSeries.list" in str(info.value)
    assert "roles/monitoring.viewer" in str(info.value)


def test_quota_usage_when_monitoring_disabled_says_how_to_enable(emu, client):
    emu.disable_service(PROJECT, "monitoring.googleapis.com")
    with pytest.raises(ApiDisabled, match="gcloud services enable monitoring.googleapis.com"):
        client.quota_usage(PROJECT, *_window(emu))


def test_request_counts_when_storm_absorbed_then_exhausted(emu, fake_sleep):
    emu.monitoring_lag_seconds = 0
    _traffic(emu)
    emu.inject_fault(service="monitoring", status=503, count=3)
    assert MonitoringClient(sleep=fake_sleep).request_counts(PROJECT, *_window(emu))
    emu.inject_fault(service="monitoring", status=500, count=1000)
    with pytest.raises(Transient):
        MonitoringClient(sleep=fake_sleep, retry_budget=10).request_counts(PROJECT, *_window(emu))
