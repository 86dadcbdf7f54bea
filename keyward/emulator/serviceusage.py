"""Service Usage v1beta1 consumer quota metrics for `generativelanguage.googleapis.com`, built from
each project's configured limits: how keyward learns RPM, TPM and RPD per model.

Shapes follow `serviceusage.v1beta1`: `ListConsumerQuotaMetricsResponse{metrics[]}`, each
`ConsumerQuotaMetric{name, metric, displayName, unit, consumerQuotaLimits[]}`, each
`ConsumerQuotaLimit{name, metric, unit, isPrecise, allowsAdminOverrides, quotaBuckets[]}`, each
`QuotaBucket{effectiveLimit, defaultLimit, dimensions{model}}` with limits as int64 strings. Like
Google, metric and limit ids inside resource names are URL-encoded (`%2F`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote

from keyward.emulator import access, errors, ratelimits
from keyward.emulator.routing import Reply, Request, Route, page, route
from keyward.emulator.state import Project, State

SERVICE = "serviceusage.googleapis.com"
GEMINI = "generativelanguage.googleapis.com"
_BASE = r"/v1beta1/projects/(?P<p>[^/]+)/services/(?P<svc>[^/]+)/consumerQuotaMetrics"

# (quota metric, display name, [(limit key in project limits, unit)])
_METRICS = [
    (ratelimits.REQUESTS_METRIC, "Generate Content free tier requests",
     [("rpm", "1/min/{project}/{model}"), ("rpd", "1/d/{project}/{model}")]),
    (ratelimits.TOKENS_METRIC, "Generate Content free tier input token count",
     [("tpm", "1/min/{project}/{model}")]),
]


def _decode(segment: str) -> str:
    previous = None
    while previous != segment:
        previous, segment = segment, unquote(segment)
    return segment


def _limit_id(unit: str) -> str:
    # "1/min/{project}/{model}" -> "/min/project/model", as Google names limits.
    return "/" + "/".join(part.strip("{}") for part in unit.split("/")[1:])


class ServiceUsage:
    """Handlers for consumerQuotaMetrics over one State."""

    def __init__(self, state: State):
        self.state = state

    def routes(self) -> list[Route]:
        return [
            route(SERVICE, "GET", _BASE, self.list),
            route(SERVICE, "GET", _BASE + r"/(?P<metric>[^/]+)", self.get),
            route(SERVICE, "GET", _BASE + r"/(?P<metric>[^/]+)/limits/(?P<limit>[^/]+)",
                  self.get_limit),
        ]

    def _metrics(self, m: re.Match[str]) -> tuple[Project, list[dict[str, Any]]]:
        project = access.check_access(self.state, m["p"], SERVICE, "serviceusage.quotas.get")
        if m["svc"] != GEMINI:
            return project, []
        return project, [_metric(project, *spec) for spec in _METRICS]

    def list(self, req: Request, m: re.Match[str]) -> Reply:
        with self.state.lock:
            _, metrics = self._metrics(m)
            chunk, token = page(metrics, req, default_size=100, max_size=1000)
            out: dict[str, Any] = {"metrics": chunk} if chunk else {}
            if token:
                out["nextPageToken"] = token
            return 200, out

    def get(self, req: Request, m: re.Match[str]) -> Reply:
        with self.state.lock:
            _, metrics = self._metrics(m)
            wanted = _decode(m["metric"])
            for metric in metrics:
                if metric["metric"] == wanted:
                    return 200, metric
            raise errors.not_found(f"Consumer quota metric '{wanted}' not found.")

    def get_limit(self, req: Request, m: re.Match[str]) -> Reply:
        status, metric = self.get(req, m)
        wanted = _decode(m["limit"])
        for limit in metric["consumerQuotaLimits"]:
            if _decode(limit["name"].rsplit("/limits/", 1)[1]) == wanted:
                return status, limit
        raise errors.not_found(f"Consumer quota limit '{wanted}' not found.")


def _metric(project: Project, metric: str, display: str,
            limits: list[tuple[str, str]]) -> dict[str, Any]:
    name = (f"projects/{project.number}/services/{GEMINI}/consumerQuotaMetrics/"
            f"{quote(metric, safe='')}")
    consumer_limits = []
    for field, unit in limits:
        buckets = [
            {"effectiveLimit": str(values[field]), "defaultLimit": str(values[field]),
             "dimensions": {"model": model}}
            for model, values in sorted(project.limits.items()) if field in values
        ]
        consumer_limits.append({
            "name": f"{name}/limits/{quote(_limit_id(unit), safe='')}",
            "metric": metric, "unit": unit, "isPrecise": True, "allowsAdminOverrides": True,
            "quotaBuckets": buckets,
        })
    return {"name": name, "metric": metric, "displayName": display, "unit": "1",
            "consumerQuotaLimits": consumer_limits}
