"""Cloud Monitoring timeSeries.list through google-api-python-client, fed by Gemini traffic."""

from __future__ import annotations

import pytest
from emulator_helpers import ALPHA
from googleapiclient.errors import HttpError

from keyward.emulator.clock import rfc3339

REQUESTS = ('metric.type = "serviceruntime.googleapis.com/api/request_count" AND '
            'resource.type = "consumed_api" AND '
            'resource.labels.service = "generativelanguage.googleapis.com"')
NET_USAGE = ('metric.type = "serviceruntime.googleapis.com/quota/rate/net_usage" AND '
             'resource.type = "consumer_quota"')


@pytest.fixture
def monitoring(api):
    return api("monitoring", "v3").projects().timeSeries()


def _window(emu, minutes: int = 10) -> dict:
    now = emu.now()
    return {"interval_startTime": rfc3339(now - minutes * 60), "interval_endTime": rfc3339(now + 1)}


def _list(monitoring, emu, **kwargs):
    window = _window(emu)
    return monitoring.list(name=f"projects/{ALPHA[0]}", view="FULL",
                           **{"interval_startTime": window["interval_startTime"],
                              "interval_endTime": window["interval_endTime"], **kwargs}).execute()


def test_request_count_when_grouped_by_credential_counts_each_key(emu, gemini, monitoring):
    first = emu.create_manual_key(ALPHA[0])
    second = emu.create_manual_key(ALPHA[0])
    for _ in range(2):
        gemini(first["keyString"], text="a")
    gemini(second["keyString"], text="a")
    gemini(second["keyString"], text="a", rpc="countTokens")
    resp = _list(monitoring, emu, filter=REQUESTS,
                 aggregation_alignmentPeriod="600s", aggregation_perSeriesAligner="ALIGN_SUM",
                 aggregation_crossSeriesReducer="REDUCE_SUM",
                 aggregation_groupByFields=["resource.labels.credential_id"])
    totals = {s["resource"]["labels"]["credential_id"]:
              sum(int(p["value"]["int64Value"]) for p in s["points"]) for s in resp["timeSeries"]}
    assert totals == {f"apikey:{first['uid']}": 2, f"apikey:{second['uid']}": 2}
    assert all(s["metricKind"] == "DELTA" and s["valueType"] == "INT64"
               for s in resp["timeSeries"])


def test_request_count_when_unaggregated_carries_full_labels_and_newest_first(
        emu, gemini, monitoring):
    key = emu.create_manual_key(ALPHA[0])
    gemini(key["keyString"], text="a")
    emu.advance(120)
    gemini(key["keyString"], text="a", version="v1")
    resp = _list(monitoring, emu, filter=REQUESTS)
    series = resp["timeSeries"]
    methods = {s["resource"]["labels"]["method"] for s in series}
    assert methods == {"google.ai.generativelanguage.v1beta.GenerativeService.GenerateContent",
                       "google.ai.generativelanguage.v1.GenerativeService.GenerateContent"}
    labels = series[0]["resource"]["labels"]
    assert labels["project_id"] == ALPHA[0] and labels["location"] == "global"
    assert series[0]["metric"]["labels"]["response_code"] == "200"
    assert series[0]["metric"]["labels"]["response_code_class"] == "2xx"

    gemini(key["keyString"], text="a")
    resp = _list(monitoring, emu, filter=REQUESTS + ' AND resource.labels.version = "v1beta"')
    points = resp["timeSeries"][0]["points"]
    ends = [p["interval"]["endTime"] for p in points]
    assert len(points) == 2 and ends == sorted(ends, reverse=True)


def test_request_count_when_429_records_response_code(emu, gemini, monitoring):
    key = emu.create_manual_key(ALPHA[0])["keyString"]
    for _ in range(4):
        gemini(key, text="a")
    resp = _list(monitoring, emu, filter=REQUESTS, aggregation_alignmentPeriod="60s",
                 aggregation_perSeriesAligner="ALIGN_SUM",
                 aggregation_crossSeriesReducer="REDUCE_SUM",
                 aggregation_groupByFields=["metric.labels.response_code"])
    by_code = {s["metric"]["labels"]["response_code"]:
               sum(int(p["value"]["int64Value"]) for p in s["points"]) for s in resp["timeSeries"]}
    assert by_code == {"200": 3, "429": 1}


def test_net_usage_when_generating_counts_requests_and_tokens(emu, gemini, monitoring):
    key = emu.create_manual_key(ALPHA[0])["keyString"]
    gemini(key, text="x" * 20)
    gemini(key, text="x" * 8)
    resp = _list(monitoring, emu, filter=NET_USAGE, aggregation_alignmentPeriod="600s",
                 aggregation_perSeriesAligner="ALIGN_SUM",
                 aggregation_crossSeriesReducer="REDUCE_SUM",
                 aggregation_groupByFields=["metric.labels.quota_metric"])
    totals = {s["metric"]["labels"]["quota_metric"].rsplit("/", 1)[1]:
              int(s["points"][0]["value"]["int64Value"]) for s in resp["timeSeries"]}
    assert totals == {"generate_content_free_tier_requests": 2,
                      "generate_content_free_tier_input_token_count": 7}


def test_list_when_lag_set_hides_recent_calls(emu, gemini, monitoring):
    emu.monitoring_lag_seconds = 180
    key = emu.create_manual_key(ALPHA[0])["keyString"]
    gemini(key, text="a")
    assert _list(monitoring, emu, filter=REQUESTS).get("timeSeries", []) == []
    emu.advance(181)
    assert len(_list(monitoring, emu, filter=REQUESTS)["timeSeries"]) == 1


@pytest.mark.parametrize("kwargs", [
    {"filter": 'resource.type = "consumed_api"'},  # no metric.type
    {"filter": 'metric.type = unquoted'},
    {"filter": REQUESTS, "aggregation_alignmentPeriod": "30s",
     "aggregation_perSeriesAligner": "ALIGN_SUM"},
    {"filter": REQUESTS, "aggregation_crossSeriesReducer": "REDUCE_SUM"},
])
def test_list_when_request_invalid_is_400(emu, monitoring, kwargs):
    with pytest.raises(HttpError) as caught:
        _list(monitoring, emu, **kwargs)
    assert caught.value.status_code == 400


def test_list_when_view_missing_is_400(emu, monitoring):
    with pytest.raises(HttpError) as caught:
        monitoring.list(name=f"projects/{ALPHA[0]}", filter=REQUESTS,
                        interval_endTime=rfc3339(emu.now())).execute()
    assert caught.value.status_code == 400


def test_list_when_permission_denied_is_403(emu, monitoring):
    emu.deny_permission(ALPHA[0], "monitoring.timeSeries.list")
    with pytest.raises(HttpError) as caught:
        _list(monitoring, emu, filter=REQUESTS)
    assert caught.value.status_code == 403
    assert caught.value.error_details[0]["metadata"]["permission"] == "monitoring.timeSeries.list"
