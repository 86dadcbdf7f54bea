"""Cloud Monitoring as a usage source: Gemini requests per key, input tokens per model.

Requests come from `api/request_count` (per credential, method and response code): only answered
generate calls (2xx on *GenerateContent methods) use generate quota, so only those count. Input
tokens come from `quota/rate/net_usage` on the token quota metrics. The model is not a label of
request_count, so requests carry model None (the pool's model is assumed by the poller).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from keyward.sources.base import Observation, UsageSource

APIKEY_PREFIX = "apikey:"


def counts_against_quota(method: str, response_code: str) -> bool:
    """Whether a request_count point used generate quota: a 2xx generate or stream call."""
    return method.endswith("GenerateContent") and response_code.startswith("2")


class CloudMonitoringSource(UsageSource):
    """Reads one project, or one metrics scope, at a time through a keyward MonitoringClient
    (injectable)."""

    name = "cloud_monitoring"

    def __init__(self, client: Any = None):
        if client is None:
            from keyward.google.monitoring import MonitoringClient

            client = MonitoringClient()
        self.client = client

    def read(self, project_id: str, start: datetime, end: datetime) -> list[Observation]:
        return _observations(self.client.request_counts(project_id, start, end),
                             self.client.quota_usage(project_id, start, end))

    def read_scope(self, scope: str, start: datetime, end: datetime) -> dict[str, list[Observation]]:
        """Read every project of the metrics scope hosted by `scope` in two reads (plus pages);
        return project id → its observations. A project without traffic is simply absent."""
        requests = self.client.scope_request_counts(scope, start, end)
        tokens = self.client.scope_quota_usage(scope, start, end)
        return {project: _observations(requests.get(project, []), tokens.get(project, []))
                for project in sorted(set(requests) | set(tokens))}


def _observations(request_points, quota_points) -> list[Observation]:
    requests: dict[tuple[datetime, str | None], int] = defaultdict(int)
    for p in request_points:
        if counts_against_quota(p.method, p.response_code):
            uid = p.credential_id[len(APIKEY_PREFIX):] if (
                p.credential_id and p.credential_id.startswith(APIKEY_PREFIX)) else None
            requests[(p.minute, uid)] += p.count
    tokens: dict[tuple[datetime, str | None], int] = defaultdict(int)
    for p in quota_points:
        if "token" in p.quota_metric.lower():
            tokens[(p.minute, p.model)] += p.value
    out = [Observation(minute, uid, None, n, 0) for (minute, uid), n in requests.items()]
    out += [Observation(minute, None, model, 0, n) for (minute, model), n in tokens.items()]
    return out
