"""The Google clients a Monitoring poll reads through, built from the config.

Every client of one process shares one pace of `usage.monitoring_reads_per_minute` (Google charges
all of them to the same quota project), keeps its connection for the pass (`keep_alive`), and
retries a call for no longer than a poll interval. httplib2 is not thread-safe, so each worker
thread gets its own client.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable

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
    from keyward.google.monitoring import MonitoringClient

    if creds is None:
        creds = credentials(ctx)
    return build_source("cloud_monitoring",
                        client=MonitoringClient(creds, retry_budget=retry_budget(ctx), keep_alive=True,
                                                pace=monitoring_pace(ctx)))


class PerThreadSources:
    """One source per worker thread from `make`, built on first use, closed together at the end."""

    def __init__(self, make: Callable[[], UsageSource]):
        self._make = make
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[UsageSource] = []

    def get(self) -> UsageSource:
        source = getattr(self._local, "source", None)
        if source is None:
            source = self._local.source = self._make()
            with self._lock:
                self._all.append(source)
        return source

    def close(self) -> None:
        for source in self._all:
            close = getattr(getattr(source, "client", None), "close", None)
            if callable(close):
                close()


def default_factory(ctx: "Context") -> Callable[[], UsageSource]:
    creds = credentials(ctx)
    return lambda: source(ctx, creds)


def scopes_client(ctx: "Context") -> Any:
    """A Metrics Scopes client on the same credentials and pace as the Monitoring reads."""
    from keyward.google.metrics_scopes import MetricsScopesClient

    return MetricsScopesClient(credentials(ctx), retry_budget=retry_budget(ctx), pace=monitoring_pace(ctx))
