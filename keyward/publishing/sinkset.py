"""The sinks each pool publishes to, built once per Context and kept while it lives.

Sinks are kept (not rebuilt on every pass) so that a sink holding its key in memory (the null sink,
plugin sinks that cache) remembers what it was given, and so that a failing sink is reported when
it starts failing and when it recovers rather than on every timer tick.

Each entry also remembers, per sink, which key it was last seen holding and the sink's change
marker at that moment (`Sink.change_marker`): while the marker stays the same the publisher does
not read the sink again. A fresh entry (sinks rebuilt) remembers nothing, so every sink is read.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from keyward.config.pools import pool_sinks
from keyward.errors import KeywardError
from keyward.sinks import Sink, build_sink

if TYPE_CHECKING:
    from keyward.context import Context

log = logging.getLogger(__name__)


@dataclass
class PoolSinks:
    """A pool's built sinks with stable labels, the ones that could not be built, and which fail now."""

    pool: str
    sinks: list[tuple[str, Sink]] = field(default_factory=list)
    broken: dict[str, str] = field(default_factory=dict)  # label → why the sink could not be built
    failing: dict[str, str] = field(default_factory=dict)  # label → last publish error
    # label → (key id, change marker, monotonic time) when the sink was last seen holding that key
    confirmed: dict[str, tuple[str, object, float]] = field(default_factory=dict)


_CACHE: "weakref.WeakKeyDictionary[Context, dict[str, PoolSinks]]" = weakref.WeakKeyDictionary()


def build_pool_sinks(ctx: "Context", pool: str) -> PoolSinks:
    """Build the pool's configured sinks (the default file sink for pools the CLI added)."""
    built = PoolSinks(pool)
    for index, cfg in enumerate(pool_sinks(ctx.config, pool)):
        try:
            sink = build_sink(pool, cfg.type, dict(cfg.options))
        except KeywardError as exc:
            built.broken[f"{cfg.type} sink #{index + 1}"] = str(exc)
            continue
        built.sinks.append((sink.describe(), sink))
    return built


def sinks_for(ctx: "Context", pool: str) -> PoolSinks:
    """Return the pool's sinks for this Context, building them on first use."""
    per_ctx = _CACHE.setdefault(ctx, {})
    entry = per_ctx.get(pool)
    if entry is None or entry.broken:
        fresh = build_pool_sinks(ctx, pool)
        if entry is not None:
            fresh.failing = entry.failing
        per_ctx[pool] = entry = fresh
    return entry
