"""Service Usage v1beta1 consumer quota metrics through google-api-python-client."""

from __future__ import annotations

import pytest
from emulator_helpers import ALPHA, BETA, LIMITS
from googleapiclient.errors import HttpError

from keyward.emulator.state import DEFAULT_LIMITS

SERVICE = "generativelanguage.googleapis.com"


@pytest.fixture
def metrics(api):
    return api("serviceusage", "v1beta1").services().consumerQuotaMetrics()


def _limits(resp: dict) -> dict[tuple[str, str, str], int]:
    out = {}
    for metric in resp["metrics"]:
        for limit in metric["consumerQuotaLimits"]:
            for bucket in limit["quotaBuckets"]:
                out[(metric["metric"].rsplit("/", 1)[1], limit["unit"],
                     bucket["dimensions"]["model"])] = int(bucket["effectiveLimit"])
    return out


def test_list_when_project_has_limits_reports_each_model(metrics):
    resp = metrics.list(parent=f"projects/{ALPHA[0]}/services/{SERVICE}", view="FULL").execute()
    limits = _limits(resp)
    flash = LIMITS["gemini-2.5-flash"]
    assert limits[("generate_content_free_tier_requests", "1/min/{project}/{model}",
                   "gemini-2.5-flash")] == flash["rpm"]
    assert limits[("generate_content_free_tier_requests", "1/d/{project}/{model}",
                   "gemini-2.5-flash")] == flash["rpd"]
    assert limits[("generate_content_free_tier_input_token_count", "1/min/{project}/{model}",
                   "gemini-2.5-pro")] == LIMITS["gemini-2.5-pro"]["tpm"]
    bucket = resp["metrics"][0]["consumerQuotaLimits"][0]["quotaBuckets"][0]
    assert isinstance(bucket["effectiveLimit"], str)


def test_list_when_project_added_without_limits_uses_defaults(metrics):
    resp = metrics.list(parent=f"projects/{BETA[1]}/services/{SERVICE}").execute()
    models = {key[2] for key in _limits(resp)}
    assert models == set(DEFAULT_LIMITS)


def test_get_limit_when_named_by_list_returns_same_limit(metrics):
    resp = metrics.list(parent=f"projects/{ALPHA[0]}/services/{SERVICE}").execute()
    limit = resp["metrics"][0]["consumerQuotaLimits"][1]
    got = metrics.limits().get(name=limit["name"]).execute()
    assert got == limit
    metric = metrics.get(name=resp["metrics"][1]["name"]).execute()
    assert metric == resp["metrics"][1]


def test_list_when_service_usage_disabled_is_service_disabled(emu, metrics):
    emu.disable_service(ALPHA[0], "serviceusage.googleapis.com")
    with pytest.raises(HttpError) as caught:
        metrics.list(parent=f"projects/{ALPHA[0]}/services/{SERVICE}").execute()
    assert caught.value.status_code == 403
    assert caught.value.error_details[0]["reason"] == "SERVICE_DISABLED"
