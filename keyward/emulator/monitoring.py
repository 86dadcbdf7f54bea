"""Cloud Monitoring v3 `projects.timeSeries.list`, serving the two serviceruntime metrics that
Gemini traffic produces, derived from the calls the emulator actually answered.

- `serviceruntime.googleapis.com/api/request_count` on `consumed_api`, one series per
  (method, version, credential, response code); every answered call counts once.
- `serviceruntime.googleapis.com/quota/rate/net_usage` on `consumer_quota`, one series per quota
  metric: accepted generateContent calls add 1 to the requests metric and their input tokens to
  the token metric.

Like Monitoring: DELTA INT64 points, `int64Value` as a string, points newest first, raw points
in 60 s buckets, aligned points in periods that end at `interval.endTime`. Calls younger than
`State.monitoring_lag_seconds` are not visible yet (real Monitoring lags a few minutes).

Reading a scoping project returns the series of every project its metrics scope monitors
(metrics_scopes.py), each with its own `resource.labels.project_id`. Pages hold at most
`State.monitoring_page_size` series. With `State.monitoring_reads_per_minute` set, reads are
charged to the caller's quota project (the `x-goog-user-project` header, else the caller's own
project), never to the project read, and one read too many in 60 seconds is a 429
RESOURCE_EXHAUSTED in the shape of Google's rate-quota errors.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from keyward.emulator import access, errors, metrics_scopes, monitoring_filter, ratelimits
from keyward.emulator.clock import parse_rfc3339, rfc3339
from keyward.emulator.errors import RpcError
from keyward.emulator.routing import Reply, Request, Route, page, route
from keyward.emulator.state import Call, State

SERVICE = "monitoring.googleapis.com"
GEMINI = "generativelanguage.googleapis.com"
REQUEST_COUNT = "serviceruntime.googleapis.com/api/request_count"
NET_USAGE = "serviceruntime.googleapis.com/quota/rate/net_usage"
_GRPC = {200: "0", 400: "3", 401: "16", 403: "7", 404: "5", 409: "10", 429: "8", 500: "13",
         503: "14"}
_ALIGNERS = {"ALIGN_NONE", "ALIGN_SUM", "ALIGN_DELTA", "ALIGN_RATE"}
_REDUCERS = {"REDUCE_NONE", "REDUCE_SUM"}

Sample = tuple[dict[str, Any], dict[str, Any], float, int]  # metric, resource, time, value


class Monitoring:
    """Handler for timeSeries.list over one State."""

    def __init__(self, state: State):
        self.state = state

    def routes(self) -> list[Route]:
        return [route(SERVICE, "GET", r"/v3/projects/(?P<p>[^/]+)/timeSeries", self.list)]

    def list(self, req: Request, m: re.Match[str]) -> Reply:
        with self.state.lock:
            _charge_read(self.state, req)
            project = access.check_access(self.state, m["p"], SERVICE, "monitoring.timeSeries.list")
            view = req.arg("view")
            if view not in ("FULL", "HEADERS"):
                raise errors.invalid_argument("Field view had an invalid value: must be FULL or "
                                              "HEADERS.", "view")
            terms = monitoring_filter.parse(req.arg("filter") or "")
            if not monitoring_filter.metric_type(terms):
                raise errors.invalid_argument("The filter must specify metric.type.", "filter")
            start, end = _interval(req)
            aligner = req.arg("aggregation.perSeriesAligner") or "ALIGN_NONE"
            reducer = req.arg("aggregation.crossSeriesReducer") or "REDUCE_NONE"
            period = _period(req, aligner)
            if aligner not in _ALIGNERS or reducer not in _REDUCERS:
                raise errors.invalid_argument(
                    f"Unsupported aggregation {aligner}/{reducer} in this emulator.", "aggregation")
            if reducer != "REDUCE_NONE" and aligner == "ALIGN_NONE":
                raise errors.invalid_argument(
                    "The aligner cannot be ALIGN_NONE when a cross-series reducer is given.",
                    "aggregation.per_series_aligner")
            visible_until = min(end, self.state.now() - self.state.monitoring_lag_seconds)
            # Points fall in (startTime, endTime]; an empty interval asks for the instant endTime.
            in_scope = metrics_scopes.members(self.state, project)
            ids = {p.number: p.project_id for p in self.state.projects.values()}
            calls = [c for c in self.state.calls
                     if c.project_number in in_scope and c.at <= visible_until
                     and (start < c.at or start == end == c.at)]
            samples = [s for s in _samples(calls, ids)
                       if monitoring_filter.matches(terms, s[0], s[1])]
            groups = _group(samples, req.args("aggregation.groupByFields"), reducer)
            series = [_series(metric, resource, points, start, end, aligner, period, view)
                      for (metric, resource), points in groups]
            cap = self.state.monitoring_page_size
            chunk, token = page(series, req, default_size=cap, max_size=cap)
            out: dict[str, Any] = {"timeSeries": chunk} if chunk else {}
            out["unit"] = "1"
            if token:
                out["nextPageToken"] = token
            return 200, out


def _interval(req: Request) -> tuple[float, float]:
    raw_end, raw_start = req.arg("interval.endTime"), req.arg("interval.startTime")
    if not raw_end:
        raise errors.invalid_argument("Field interval.endTime is required.", "interval.end_time")
    try:
        end = parse_rfc3339(raw_end)
        start = parse_rfc3339(raw_start) if raw_start else end
    except ValueError:
        raise errors.invalid_argument("Invalid interval timestamp.", "interval") from None
    if start > end:
        raise errors.invalid_argument("The start time must be before the end time.", "interval")
    return start, end


def _period(req: Request, aligner: str) -> float:
    raw = req.arg("aggregation.alignmentPeriod")
    if aligner == "ALIGN_NONE":
        return 60.0
    if not raw:
        raise errors.invalid_argument("An alignment period is required with an aligner.",
                                      "aggregation.alignment_period")
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s", raw)
    if not match or float(match[1]) < 60:
        raise errors.invalid_argument(
            "The alignment period must be at least 60s, e.g. '60s'.", "aggregation.alignment_period")
    return float(match[1])


def _charge_read(state: State, req: Request) -> None:
    """Count one read against the caller's quota project; raise 429 if the last 60 s are full."""
    limit = state.monitoring_reads_per_minute
    if limit is None:
        return
    consumer = req.headers.get("x-goog-user-project") or "caller"
    now = state.now()
    reads = [t for t in state.monitoring_reads.get(consumer, []) if t > now - 60.0]
    if len(reads) >= limit:
        state.monitoring_reads[consumer] = reads
        message = (f"Quota exceeded for quota metric 'Time series queries' and limit 'Time series "
                   f"queries per minute' of service '{SERVICE}' for consumer '{consumer}'.")
        raise RpcError("RESOURCE_EXHAUSTED", message, [
            errors.error_info("RATE_LIMIT_EXCEEDED", "googleapis.com", {
                "service": SERVICE, "consumer": consumer, "quota_limit_value": str(limit),
                "quota_location": "global"}),
            errors.help_links(("Request a higher quota limit.",
                               "https://cloud.google.com/docs/quotas/help/request_increase")),
        ])
    reads.append(now)
    state.monitoring_reads[consumer] = reads


def _samples(calls: list[Call], ids: dict[str, str]) -> list[Sample]:
    """Monitoring's view of `calls`; `ids` maps a project number to its id."""
    out: list[Sample] = []
    for call in calls:
        project_id = ids.get(call.project_number, call.project_number)
        code = str(call.code)
        out.append((
            {"type": REQUEST_COUNT, "labels": {
                "response_code": code, "response_code_class": f"{code[0]}xx",
                "grpc_status_code": _GRPC.get(call.code, "2"), "protocol": "http"}},
            {"type": "consumed_api", "labels": {
                "project_id": project_id, "service": GEMINI, "method": call.method,
                "version": call.version, "location": "global",
                "credential_id": f"apikey:{call.credential_uid}"}},
            call.at, 1))
        if call.counted:
            quota_resource = {"type": "consumer_quota", "labels": {
                "project_id": project_id, "service": GEMINI, "location": "global"}}
            for metric, value in ((ratelimits.REQUESTS_METRIC, 1),
                                  (ratelimits.TOKENS_METRIC, call.input_tokens)):
                out.append(({"type": NET_USAGE, "labels": {
                    "quota_metric": metric, "method": call.method}}, quota_resource, call.at, value))
    return out


def _group(samples: list[Sample], group_by: list[str], reducer: str):
    """Group samples into series: by all labels, or only by `group_by` fields when reducing."""
    fields = [f.strip() for item in group_by for f in item.split(",") if f.strip()]
    series: dict[str, tuple[dict, dict, list[tuple[float, int]]]] = {}
    for metric, resource, at, value in samples:
        if reducer != "REDUCE_NONE":
            metric, resource = _project_labels(metric, resource, fields)
        key = repr((sorted(metric["labels"].items()), metric["type"],
                    sorted(resource["labels"].items()), resource["type"]))
        series.setdefault(key, (metric, resource, []))[2].append((at, value))
    return [((m, r), pts) for _, (m, r, pts) in sorted(series.items())]


def _project_labels(metric: dict, resource: dict, fields: list[str]) -> tuple[dict, dict]:
    kept_metric: dict[str, str] = {}
    kept_resource: dict[str, str] = {}
    for f in fields:
        match = re.fullmatch(r"(metric|resource)\.labels?\.(\w+)", f)
        if not match:
            raise errors.invalid_argument(f"Unsupported group-by field: {f}", "group_by_fields")
        source, target = (metric, kept_metric) if match[1] == "metric" else (resource, kept_resource)
        if match[2] in source["labels"]:
            target[match[2]] = source["labels"][match[2]]
    return ({"type": metric["type"], "labels": kept_metric},
            {"type": resource["type"], "labels": kept_resource})


def _series(metric: dict, resource: dict, samples: list[tuple[float, int]], start: float,
            end: float, aligner: str, period: float, view: str) -> dict[str, Any]:
    rate = aligner == "ALIGN_RATE"
    out: dict[str, Any] = {"metric": metric, "resource": resource,
                           "metricKind": "GAUGE" if rate else "DELTA",
                           "valueType": "DOUBLE" if rate else "INT64",
                           "unit": "1/s" if rate else "1"}
    if view == "HEADERS":
        return out
    buckets: dict[float, int] = defaultdict(int)
    for at, value in samples:
        if aligner == "ALIGN_NONE":
            buckets[at - at % 60.0] += value  # bucket start
        else:
            index = int((end - at) // period)  # periods end at interval.endTime
            buckets[end - index * period - period] += value
    points = []
    for bucket_start in sorted(buckets, reverse=True):
        value = buckets[bucket_start]
        span = 60.0 if aligner == "ALIGN_NONE" else period
        typed = {"doubleValue": value / span} if rate else {"int64Value": str(value)}
        points.append({"interval": {"startTime": rfc3339(bucket_start),
                                    "endTime": rfc3339(bucket_start + span)}, "value": typed})
    out["points"] = points
    return out
