"""Metrics scopes and Monitoring's read quota in the emulator, through google-api-python-client:
a scope's membership by number, a scoping project's series covering its members, paging, and
429s charged to the caller's quota project rather than to the project read."""

from __future__ import annotations

import pytest
from emulator_helpers import ALPHA, BETA, details_of, http
from googleapiclient.errors import HttpError

from keyward.emulator.clock import rfc3339
from keyward.errors import UsageError

GAMMA = ("gamma-proj", "333333333333")
REQUESTS = ('metric.type = "serviceruntime.googleapis.com/api/request_count" AND '
            'resource.type = "consumed_api"')
PREFIX = "locations/global/metricsScopes/"


@pytest.fixture
def scopes(api):
    return api("monitoring", "v1").locations().global_().metricsScopes()


@pytest.fixture
def series(api):
    return api("monitoring", "v3").projects().timeSeries()


def _list(series, emu, project: str, **extra):
    now = emu.now()
    return series.list(name=f"projects/{project}", view="FULL", filter=REQUESTS,
                       interval_startTime=rfc3339(now - 600), interval_endTime=rfc3339(now + 1),
                       aggregation_alignmentPeriod="60s", aggregation_perSeriesAligner="ALIGN_SUM",
                       aggregation_crossSeriesReducer="REDUCE_SUM",
                       aggregation_groupByFields=["resource.labels.project_id"], **extra)


def _traffic(emu, gemini, project_id: str, n: int) -> None:
    key = emu.create_manual_key(project_id)["keyString"]
    for _ in range(n):
        assert gemini(key, text="a")[0] == 200


def test_get_scope_when_projects_were_added_by_id_names_everyone_by_number(emu, scopes):
    emu.add_project(*GAMMA)
    emu.add_to_metrics_scope(GAMMA[0], ALPHA[0])
    emu.add_to_metrics_scope(GAMMA[0], BETA[0])
    body = scopes.get(name=PREFIX + GAMMA[0]).execute()
    assert body["name"] == PREFIX + GAMMA[1]
    assert sorted(p["name"] for p in body["monitoredProjects"]) == sorted(
        f"{PREFIX}{GAMMA[1]}/projects/{n}" for n in (ALPHA[1], BETA[1], GAMMA[1]))
    assert all(p["createTime"].endswith("Z") for p in body["monitoredProjects"])


def test_get_scope_without_resourcemanager_permission_is_denied(emu, scopes):
    emu.deny_permission(ALPHA[0], "resourcemanager.projects.get")
    with pytest.raises(HttpError) as caught:
        scopes.get(name=PREFIX + ALPHA[0]).execute()
    assert caught.value.status_code == 403
    assert b"resourcemanager.projects.get" in caught.value.content


def test_series_of_a_scoping_project_cover_its_members_labelled_by_project(emu, gemini, series):
    emu.add_project(*GAMMA)
    emu.add_to_metrics_scope(GAMMA[0], ALPHA[0])
    _traffic(emu, gemini, ALPHA[0], 2)
    _traffic(emu, gemini, BETA[0], 1)  # not in the scope
    _traffic(emu, gemini, GAMMA[0], 3)  # the scoping project itself
    answer = _list(series, emu, GAMMA[0]).execute()
    counts = {s["resource"]["labels"]["project_id"]: sum(int(p["value"]["int64Value"]) for p in s["points"])
              for s in answer["timeSeries"]}
    assert counts == {ALPHA[0]: 2, GAMMA[0]: 3}
    alone = _list(series, emu, BETA[0]).execute()  # a member read on its own sees only itself
    assert [s["resource"]["labels"]["project_id"] for s in alone["timeSeries"]] == [BETA[0]]


def test_series_of_a_scope_come_in_pages_of_the_configured_size(emu, gemini, series):
    emu.add_project(*GAMMA)
    emu.add_to_metrics_scope(GAMMA[0], ALPHA[0])
    emu.add_to_metrics_scope(GAMMA[0], BETA[0])
    for project_id in (ALPHA[0], BETA[0], GAMMA[0]):
        _traffic(emu, gemini, project_id, 1)
    emu.monitoring_page_size = 2
    first = _list(series, emu, GAMMA[0], pageSize=100).execute()
    assert len(first["timeSeries"]) == 2 and first["nextPageToken"]
    second = _list(series, emu, GAMMA[0], pageSize=100, pageToken=first["nextPageToken"]).execute()
    assert len(second["timeSeries"]) == 1 and "nextPageToken" not in second
    seen = [s["resource"]["labels"]["project_id"] for s in first["timeSeries"] + second["timeSeries"]]
    assert sorted(seen) == sorted([ALPHA[0], BETA[0], GAMMA[0]])


def test_read_quota_is_charged_to_the_quota_project_not_the_project_read(emu):
    emu.monitoring_reads_per_minute = 2
    now = emu.now()
    query = (f"view=FULL&filter=metric.type%3D%22x%22&interval.startTime={rfc3339(now - 60)}"
             f"&interval.endTime={rfc3339(now)}")
    billed = {"x-goog-user-project": "billing-proj"}
    for project in (ALPHA[0], BETA[0]):  # two projects read, one quota project billed
        assert http(f"{emu.url}/v3/projects/{project}/timeSeries?{query}", headers=billed)[0] == 200
    status, body = http(f"{emu.url}/v3/projects/{ALPHA[0]}/timeSeries?{query}", headers=billed)
    assert status == 429 and body["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert details_of(body, "ErrorInfo")[0]["reason"] == "RATE_LIMIT_EXCEEDED"
    assert "billing-proj" in body["error"]["message"]
    other = {"x-goog-user-project": "other-billing"}  # another quota project has its own budget
    assert http(f"{emu.url}/v3/projects/{ALPHA[0]}/timeSeries?{query}", headers=other)[0] == 200
    emu.advance(61)  # the window rolls on
    assert http(f"{emu.url}/v3/projects/{ALPHA[0]}/timeSeries?{query}", headers=billed)[0] == 200


def test_a_scope_monitors_at_most_375_projects(emu):
    emu.add_project(*GAMMA)
    for i in range(375):
        emu.add_project(f"member-{i:04d}", str(500000000000 + i))
        emu.add_to_metrics_scope(GAMMA[0], f"member-{i:04d}")
    with pytest.raises(UsageError, match="375"):
        emu.add_to_metrics_scope(GAMMA[0], ALPHA[0])
    emu.remove_from_metrics_scope(GAMMA[0], "member-0000")
    emu.add_to_metrics_scope(GAMMA[0], ALPHA[0])


def test_admin_endpoint_sets_membership_and_quota_from_another_process(emu, scopes):
    emu.add_project(*GAMMA)
    assert http(f"{emu.url}/_emulator/metricsScopes", "POST",
                {"scopingProjectId": GAMMA[0], "projectId": BETA[0]})[0] == 200
    status, settings = http(f"{emu.url}/_emulator/settings", "POST",
                            {"monitoringReadsPerMinute": 100, "monitoringPageSize": 10})
    assert status == 200 and settings["monitoringReadsPerMinute"] == 100
    names = [p["name"] for p in scopes.get(name=PREFIX + GAMMA[0]).execute()["monitoredProjects"]]
    assert f"{PREFIX}{GAMMA[1]}/projects/{BETA[1]}" in names
    http(f"{emu.url}/_emulator/metricsScopes", "POST",
         {"scopingProjectId": GAMMA[0], "projectId": BETA[0], "remove": True})
    names = [p["name"] for p in scopes.get(name=PREFIX + GAMMA[0]).execute()["monitoredProjects"]]
    assert names == [f"{PREFIX}{GAMMA[1]}/projects/{GAMMA[1]}"]
