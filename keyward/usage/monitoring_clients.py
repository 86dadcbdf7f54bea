"""The Google clients a Monitoring poll reads through, built from the config.

Every client of one process shares one pace of `usage.monitoring_reads_per_minute` (Google charges
all of them to the same quota project) and retries a call for no longer than a poll interval.
The workers of a pass share one client, whose parsed API sends each thread's requests through
that thread's own connection (httplib2 is not thread-safe), kept open for the pass and closed at
its end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from keyward.per_thread import PerThread
from keyward.sources import UsageSource, build_source

if TYPE_CHECKING:
    from keyward.context import Context
    from keyward.google.read_pace import ReadPace


def monitoring_pace(ctx: "Context") -> "ReadPace":
    """The process-wide pace of Monitoring reads for this config's budget."""
    from keyward.google.read_pace import shared_pace

    return shared_pace("monitoring", ctx.config.usage.monitoring_reads_per_minute)


def retry_budget(ctx: "Context") -> float:
    return min(ctx.config.rotation.retry_budget, ctx.config.usage.poll_interval).total_seconds()


def credentials(ctx: "Context") -> Any:
    from keyward.google.auth import load_credentials

    return load_credentials(ctx.config.google.credentials, quota_project=ctx.config.google.quota_project)


def source(ctx: "Context", creds=None) -> UsageSource:
    """A Cloud Monitoring source that every worker thread of a pass may share."""
    from keyward.google.monitoring import MonitoringClient
    from keyward.google.transport import build_api

    if creds is None:
        creds = credentials(ctx)
    api = build_api(*MonitoringClient.API, creds, per_thread=True)
    return build_source("cloud_monitoring",
                        client=MonitoringClient(creds, api=api, retry_budget=retry_budget(ctx),
                                                keep_alive=True, pace=monitoring_pace(ctx)))


class PerThreadSources:
    """The source of each worker thread from `make` (which may hand every thread the same one),
    built on first use, each closed once at the end."""

    def __init__(self, make: Callable[[], UsageSource]):
        self._sources: PerThread[UsageSource] = PerThread(make)

    def get(self) -> UsageSource:
        return self._sources.get()

    def close(self) -> None:
        for source in self._sources.drain():
            close = getattr(getattr(source, "client", None), "close", None)
            if callable(close):
                close()


def default_factory(ctx: "Context") -> Callable[[], UsageSource]:
    """Every worker of the pass gets the same source (one parsed API, a connection per thread)."""
    shared = source(ctx)
    return lambda: shared


def scopes_client(ctx: "Context") -> Any:
    """A Metrics Scopes client on the same credentials and pace as the Monitoring reads."""
    from keyward.google.metrics_scopes import MetricsScopesClient

    return MetricsScopesClient(credentials(ctx), retry_budget=retry_budget(ctx), pace=monitoring_pace(ctx))
