"""Usage sources: where keyward learns how much of each project's quota was used.

Pulled sources (Cloud Monitoring) implement `UsageSource` and are registered here by their config
name; pushed ones (local reports, the ingest socket) arrive through `keyward.usage.reporter` and
`keyward.usage.ingest`. The registry maps names to classes explicitly: no lookup by string
attribute.
"""

from __future__ import annotations

from typing import Any, Callable

from keyward.errors import ConfigError
from keyward.sources.base import Observation, UsageSource

__all__ = ["Observation", "UsageSource", "SOURCES", "build_source"]


def _cloud_monitoring(**options: Any) -> UsageSource:
    from keyward.sources.cloud_monitoring import CloudMonitoringSource

    return CloudMonitoringSource(**options)


SOURCES: dict[str, Callable[..., UsageSource]] = {"cloud_monitoring": _cloud_monitoring}


def build_source(name: str, **options: Any) -> UsageSource:
    """Return the usage source registered as `name`; raise ConfigError for an unknown name."""
    factory = SOURCES.get(name)
    if factory is None:
        raise ConfigError(f"unknown usage source {name!r} (known: {', '.join(sorted(SOURCES))})")
    return factory(**options)
