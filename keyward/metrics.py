"""Prometheus metrics on loopback, built at scrape time from the same model as `keyward status`.

Reading the status model on each scrape keeps one source of truth (no counters to drift from the
database) and costs a few bulk queries. Labels carry project ids, pool names and key ids, never a
key string. `prometheus_client` is optional (`pip install 'keyward[metrics]'`).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Callable, Iterator

from keyward.errors import UsageError

if TYPE_CHECKING:
    from keyward.context import Context

log = logging.getLogger(__name__)


class StatusCollector:
    """A prometheus_client collector over keyward's status model."""

    def __init__(self, get_ctx: Callable[[], "Context"]):
        self.get_ctx = get_ctx

    def describe(self):
        return []

    def collect(self) -> Iterator:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from keyward.status import build_status
        from keyward.storage import store as q

        ctx = self.get_ctx()
        status = build_status(ctx)
        with ctx.store.read() as s:
            rotations = q.rotation_outcomes(s)
            errors = q.error_counts(s, ctx.now() - timedelta(hours=24))

        load = GaugeMetricFamily("keyward_project_load", "Highest used/limit fraction of RPM, TPM and RPD",
                                 labels=["pool", "project", "model"])
        used = GaugeMetricFamily("keyward_usage", "Requests (rpm, rpd) or input tokens (tpm) used in the window",
                                 labels=["pool", "project", "model", "window"])
        limit = GaugeMetricFamily("keyward_limit", "The project's limit for the window",
                                  labels=["pool", "project", "model", "window", "source"])
        exhausted = GaugeMetricFamily("keyward_project_exhausted", "1 while Google says the quota is exhausted",
                                      labels=["pool", "project", "model"])
        key_age = GaugeMetricFamily("keyward_key_age_seconds", "Age of each live key",
                                    labels=["project", "key_id", "state", "kind"])
        for p in status["projects"]:
            base = [p["pool"], p["project_id"], p["model"]]
            if p["load"] is not None:
                load.add_metric(base, p["load"])
            exhausted.add_metric(base, 1.0 if p["exhausted"] else 0.0)
            for window, figures in p["usage"].items():
                used.add_metric(base + [window], figures["used"])
                if figures["limit"] is not None:
                    limit.add_metric(base + [window, p["limit_source"] or "unknown"], figures["limit"])
            for k in p["keys"]:
                key_age.add_metric([p["project_id"], k["key_id"], k["state"], k["kind"]], k["age_s"])

        current = GaugeMetricFamily("keyward_pool_current_key_info", "The key id each pool publishes (value 1)",
                                    labels=["pool", "key_id", "project"])
        all_exhausted = GaugeMetricFamily("keyward_pool_all_exhausted", "1 when every project of the pool is exhausted",
                                          labels=["pool"])
        for pool in status["pools"]:
            if pool["current"]:
                current.add_metric([pool["name"], pool["current"]["key_id"], pool["current"]["project_id"]], 1)
            all_exhausted.add_metric([pool["name"]], 1.0 if pool["all_exhausted"] else 0.0)

        rotated = CounterMetricFamily("keyward_rotations", "Finished rotations by outcome and reason",
                                      labels=["outcome", "reason"])
        for (outcome, reason), count in sorted(rotations.items()):
            rotated.add_metric([outcome, reason], count)
        failures = GaugeMetricFamily("keyward_errors_last_24h", "Error events in the journal in the last 24 h, "
                                     "by kind (rotation.failed, publish.failed, key.invalid, …)", labels=["kind"])
        for kind, count in sorted(errors.items()):
            failures.add_metric([kind], count)
        warnings = GaugeMetricFamily("keyward_warnings", "Warnings keyward status shows, by code", labels=["code"])
        codes: dict[str, int] = {}
        for w in status["warnings"]:
            codes[w["code"]] = codes.get(w["code"], 0) + 1
        for code, count in sorted(codes.items()):
            warnings.add_metric([code], count)
        daemon_up = GaugeMetricFamily("keyward_daemon_heartbeat_age_seconds", "Seconds since the last heartbeat")
        if status["daemon"]["heartbeat_age_s"] is not None:
            daemon_up.add_metric([], status["daemon"]["heartbeat_age_s"])
        yield from (load, used, limit, exhausted, key_age, current, all_exhausted, rotated, failures, warnings,
                    daemon_up)
        yield from _cost_metrics(status)


def _cost_metrics(status: dict) -> Iterator:
    """Estimated spend (only with [prices] in the config) and each budget's spent fraction."""
    from prometheus_client.core import GaugeMetricFamily

    spend = GaugeMetricFamily("keyward_project_spend", "Estimated spend of the Pacific day or month",
                              labels=["pool", "project", "period", "currency"])
    pool_spend = GaugeMetricFamily("keyward_pool_spend", "Estimated spend of the pool in the Pacific day or month",
                                   labels=["pool", "period", "currency"])
    budget = GaugeMetricFamily("keyward_pool_budget_fraction", "Highest spent fraction of the pool's budgets "
                               "(1 = spent)", labels=["pool", "period"])
    for p in status["projects"]:
        if p.get("cost"):
            for period in ("day", "month"):
                spend.add_metric([p["pool"], p["project_id"], period, p["cost"]["currency"]], p["cost"][period])
    for pool in status["pools"]:
        cost = pool.get("cost")
        if not cost:
            continue
        for period in ("day", "month"):
            pool_spend.add_metric([pool["name"], period, cost["currency"]], cost[period])
        if cost.get("budget") and cost["budget"]["fraction"] is not None:
            budget.add_metric([pool["name"], cost["budget"]["period"]], cost["budget"]["fraction"])
    yield from (spend, pool_spend, budget)


class MetricsServer:
    def __init__(self, server, thread):
        self._server, self._thread = server, thread
        self.port = server.server_port

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def start_metrics_server(get_ctx: Callable[[], "Context"], address: str) -> MetricsServer:
    """Serve /metrics on `address` ("127.0.0.1:9877"). Raise UsageError when prometheus_client is absent."""
    try:
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError:
        raise UsageError("metrics need prometheus_client: pip install 'keyward[metrics]'") from None
    host, _, port = address.rpartition(":")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(get_ctx))
    server, thread = start_http_server(int(port), addr=host.strip("[]"), registry=registry)
    log.info("metrics on http://%s/metrics", address)
    return MetricsServer(server, thread)
