import pytest

from keyward.errors import ApiDisabled, PermissionMissing, Transient
from keyward.google import serviceusage
from keyward.google.serviceusage import ServiceUsageClient, limits_from_metrics

PROJECT = "alpha"


@pytest.fixture
def client(emu, fake_sleep):
    return ServiceUsageClient(sleep=fake_sleep, retry_budget=60.0)


def test_gemini_limits_reads_rpm_tpm_rpd_per_model(emu, client):
    limits = {"gemini-2.5-flash": {"rpm": 10, "tpm": 250000, "rpd": 250},
              "gemini-2.5-pro": {"rpm": 5, "tpm": 125000, "rpd": 100}}
    emu.add_project("beta", "333333333333", limits=limits)
    assert client.gemini_limits("beta") == limits


def test_gemini_limits_when_many_pages_reads_all(emu, client, monkeypatch):
    monkeypatch.setattr(serviceusage, "PAGE_SIZE", 1)
    assert client.gemini_limits(PROJECT) == {"gemini-2.5-flash": {"rpm": 10, "tpm": 100000,
                                                                   "rpd": 500}}


def test_gemini_limits_when_denied_names_permission_and_role(emu, client):
    emu.deny_permission(PROJECT, "serviceusage.quotas.get")
    with pytest.raises(PermissionMissing) as info:
        client.gemini_limits(PROJECT)
    assert "serviceusage.quotas.get" in str(info.value)
    assert "roles/serviceusage.serviceUsageViewer" in str(info.value)


def test_gemini_limits_when_service_usage_disabled_says_how_to_enable(emu, client):
    emu.disable_service(PROJECT, "serviceusage.googleapis.com")
    with pytest.raises(ApiDisabled, match="serviceusage.googleapis.com"):
        client.gemini_limits(PROJECT)


def test_gemini_limits_when_malformed_then_ok_retries(emu, client, fake_sleep):
    emu.inject_fault(service="serviceusage", malformed=True, count=2)
    assert client.gemini_limits(PROJECT)
    assert len(fake_sleep.calls) == 2


def test_gemini_limits_when_unknown_project_is_permission_missing(emu, client):
    with pytest.raises(PermissionMissing):
        client.gemini_limits("no-such-project")


def test_gemini_limits_when_slow_raises_transient(emu, fake_sleep):
    emu.inject_fault(service="serviceusage", status=0, latency_ms=800, count=100)
    with pytest.raises(Transient):
        ServiceUsageClient(sleep=fake_sleep, retry_budget=0.3, timeout=0.2).gemini_limits(PROJECT)


def _limit(unit, *buckets):
    return {"unit": unit, "quotaBuckets": list(buckets)}


def test_limits_from_metrics_classifies_unlimited_defaults_and_tiers():
    metrics = [
        {"metric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
         "consumerQuotaLimits": [
             _limit("1/min/{project}/{model}",
                    {"effectiveLimit": "15", "dimensions": {"model": "m1"}},
                    {"effectiveLimit": "-1", "dimensions": {"model": "m2"}},
                    {"effectiveLimit": "2"}),
             _limit("1/d/{project}/{model}", {"defaultLimit": "1500", "dimensions": {"model": "m1"}}),
         ]},
        {"metric": "generativelanguage.googleapis.com/generate_content_paid_tier_requests",
         "consumerQuotaLimits": [
             _limit("1/min/{project}/{model}", {"effectiveLimit": "10", "dimensions": {"model": "m1"}}),
         ]},
        {"metric": "generativelanguage.googleapis.com/generate_content_input_token_count",
         "consumerQuotaLimits": [
             _limit("1/min/{project}/{model}", {"effectiveLimit": "1000000",
                                                "dimensions": {"model": "m1"}}),
             _limit("1/d/{project}/{model}", {"effectiveLimit": "5", "dimensions": {"model": "m1"}}),
             _limit("1/min/{project}/{model}", {"effectiveLimit": "not-a-number",
                                                "dimensions": {"model": "m2"}}),
         ]},
    ]
    assert limits_from_metrics(metrics) == {
        "m1": {"rpm": 10, "tpm": 1000000, "rpd": 1500},
        "m2": {"rpm": None, "tpm": None, "rpd": None},
        "*": {"rpm": 2, "tpm": None, "rpd": None},
    }
