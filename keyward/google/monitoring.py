"""Cloud Monitoring (v3): how many Gemini requests each key made, and quota used, per minute.

Two metrics that Google writes for every project: `serviceruntime.googleapis.com/api/request_count`
(per credential, method and response code) and `serviceruntime.googleapis.com/quota/rate/net_usage`
(per quota metric). Both are DELTA counts; keyward asks for 60 s ALIGN_SUM buckets over whole UTC
minutes. Monitoring lags a few minutes, so the newest minutes may still grow on a later read.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from keyward.errors import Transient, UsageError
from keyward.google.timefmt import MINUTE, floor_minute, parse_rfc3339, to_rfc3339
from keyward.google.transport import DiscoveryClient

log = logging.getLogger(__name__)

GEMINI_SERVICE = "generativelanguage.googleapis.com"
REQUEST_COUNT = "serviceruntime.googleapis.com/api/request_count"
NET_USAGE = "serviceruntime.googleapis.com/quota/rate/net_usage"
PAGE_SIZE = 10000


@dataclass(frozen=True)
class RequestPoint:
    """Requests answered in one UTC minute (`minute` = its start) for one key, method and code."""

    minute: datetime
    credential_id: str | None  # "apikey:<Key.uid>"
    method: str
    response_code: str
    count: int


@dataclass(frozen=True)
class QuotaPoint:
    """Quota consumed in one UTC minute against one quota metric (and model, when labelled)."""

    minute: datetime
    quota_metric: str
    model: str | None
    value: int


class MonitoringClient(DiscoveryClient):
    """A small client for Cloud Monitoring's timeSeries.list; pass `api` to aim it elsewhere.

    With `pace` (a ReadPace), every request it sends, pages and retries included, first takes a
    slot of the quota project's read budget.
    """

    API = ("monitoring", "v3")

    def __init__(self, *args: Any, pace: Any = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.pace = pace

    def request_counts(self, project: str, start: datetime, end: datetime) -> list[RequestPoint]:
        """Return Gemini request counts per minute in [start, end), by key, method and code.

        `start` and `end` are floored to whole UTC minutes (naive datetimes are UTC).
        """
        return self._request_counts(project, start, end, by_project=False).get(project, [])

    def quota_usage(self, project: str, start: datetime, end: datetime) -> list[QuotaPoint]:
        """Return Gemini quota consumed per minute in [start, end), by quota metric and model.

        Series are not reduced by Monitoring, so any model label Google attaches is kept;
        keyward sums over the other labels (method) itself.
        """
        return self._quota_usage(project, start, end, by_project=False).get(project, [])

    def scope_request_counts(self, scope: str, start: datetime,
                             end: datetime) -> dict[str, list[RequestPoint]]:
        """Like `request_counts`, for every project in the metrics scope of scoping project
        `scope`, in one read (plus pages): project id → its points."""
        return self._request_counts(scope, start, end, by_project=True)

    def scope_quota_usage(self, scope: str, start: datetime,
                          end: datetime) -> dict[str, list[QuotaPoint]]:
        """Like `quota_usage`, for every project in the metrics scope of `scope`, in one read."""
        return self._quota_usage(scope, start, end, by_project=True)

    def _request_counts(self, name: str, start: datetime, end: datetime, *,
                        by_project: bool) -> dict[str, list[RequestPoint]]:
        # A list filter names exactly one metric type, so requests and tokens are two reads.
        filt = (f'metric.type="{REQUEST_COUNT}" AND resource.type="consumed_api" '
                f'AND resource.labels.service="{GEMINI_SERVICE}"')
        group = ["resource.labels.credential_id", "resource.labels.method",
                 "metric.labels.response_code"]
        if by_project:
            group.insert(0, "resource.labels.project_id")
        points: dict[str, list[RequestPoint]] = defaultdict(list)
        for series in self._series(name, filt, start, end, reducer="REDUCE_SUM", group_by=group):
            resource = _labels(series.get("resource"))
            metric = _labels(series.get("metric"))
            owner = _owner(resource, name, by_project)
            for minute, value in _points(series):
                points[owner].append(RequestPoint(minute, resource.get("credential_id") or None,
                                                  resource.get("method", ""),
                                                  metric.get("response_code", ""), value))
        return {owner: sorted(found, key=lambda p: (p.minute, p.credential_id or "", p.method,
                                                    p.response_code))
                for owner, found in points.items()}

    def _quota_usage(self, name: str, start: datetime, end: datetime, *,
                     by_project: bool) -> dict[str, list[QuotaPoint]]:
        filt = (f'metric.type="{NET_USAGE}" AND resource.type="consumer_quota" '
                f'AND resource.labels.service="{GEMINI_SERVICE}"')
        totals: dict[str, dict[tuple[datetime, str, str | None], int]] = defaultdict(
            lambda: defaultdict(int))
        for series in self._series(name, filt, start, end, reducer=None, group_by=[]):
            metric = _labels(series.get("metric"))
            resource = _labels(series.get("resource"))
            owner = _owner(resource, name, by_project)
            quota_metric = metric.get("quota_metric", "")
            model = metric.get("model") or resource.get("model") or None
            for minute, value in _points(series):
                totals[owner][(minute, quota_metric, model)] += value
        return {owner: [QuotaPoint(m, q, model, v) for (m, q, model), v in
                        sorted(found.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or ""))]
                for owner, found in totals.items()}

    def _series(self, project: str, filt: str, start: datetime, end: datetime, *,
                reducer: str | None, group_by: list[str]) -> Iterator[dict[str, Any]]:
        first, last = floor_minute(start), floor_minute(end)
        if last <= first:
            raise UsageError(f"reading Cloud Monitoring: the window {to_rfc3339(start)} → "
                             f"{to_rfc3339(end)} holds no whole minute")
        kwargs: dict[str, Any] = {
            "name": f"projects/{project}", "filter": filt,
            "interval_startTime": to_rfc3339(first), "interval_endTime": to_rfc3339(last),
            "aggregation_alignmentPeriod": "60s", "aggregation_perSeriesAligner": "ALIGN_SUM",
            "view": "FULL", "pageSize": PAGE_SIZE,
        }
        if reducer:
            kwargs["aggregation_crossSeriesReducer"] = reducer
            kwargs["aggregation_groupByFields"] = group_by
        list_call = self.api.projects().timeSeries().list
        pace = self.pace

        def request(**page_kwargs: Any) -> Any:
            if pace is not None:
                pace.acquire()  # every attempt is a read Google counts, a retry included
            return list_call(**page_kwargs)

        yield from self._pages(request, kwargs, "timeSeries", action="monitoring", project=project,
                               what="reading request counts from Cloud Monitoring")


def _owner(resource: dict[str, str], name: str, by_project: bool) -> str:
    """The project a series belongs to: its project_id label when reading a metrics scope."""
    if not by_project:
        return name
    owner = resource.get("project_id")
    if not owner:
        raise Transient(f"reading the metrics scope of {name} from Cloud Monitoring: a time "
                        "series carries no resource.labels.project_id — keyward retries",
                        reason="MALFORMED")
    return owner


def _labels(obj: Any) -> dict[str, str]:
    labels = obj.get("labels") if isinstance(obj, dict) else None
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def _points(series: dict[str, Any]) -> Iterator[tuple[datetime, int]]:
    """Yield (minute start, value) for each aligned point; values are int64 strings."""
    for point in series.get("points") or []:
        try:
            interval = point["interval"]
            end = parse_rfc3339(interval["endTime"])
            raw_start = interval.get("startTime")
            start = parse_rfc3339(raw_start) if raw_start else end - MINUTE
            value = point.get("value") or {}
            if "int64Value" in value:
                count = int(value["int64Value"])
            else:
                count = round(float(value.get("doubleValue", 0)))
        except (KeyError, TypeError, ValueError):
            raise Transient("reading Cloud Monitoring: a time series point was malformed — "
                            "keyward retries", reason="MALFORMED") from None
        if start >= end:
            start = end - MINUTE
        yield floor_minute(start), count
