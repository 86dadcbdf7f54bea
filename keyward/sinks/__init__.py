"""Publish sinks and their registry, keyed by the name used in the configuration (`type = "file"`).

Built-in sinks are `file`, `keyring` and `null`. Other packages add sinks through the
`keyward.sinks` entry point group; those are looked up only when a name is not built in, so
importing this package stays cheap (no `importlib.metadata`, no `keyring`).
"""

from __future__ import annotations

import logging
from typing import Any

from keyward.errors import ConfigError
from keyward.sinks.base import Sink
from keyward.sinks.file import FileSink
from keyward.sinks.null import NullSink
from keyward.sinks.os_keyring import KeyringSink

__all__ = ["Sink", "FileSink", "KeyringSink", "NullSink", "sink_types", "build_sink"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "keyward.sinks"

_BUILT_IN: dict[str, type[Sink]] = {cls.type_name: cls for cls in (FileSink, KeyringSink, NullSink)}


def _plugin_types() -> dict[str, type[Sink]]:
    """Load sinks other packages registered; a plugin that fails to load is logged and left out."""
    from importlib.metadata import entry_points

    found: dict[str, type[Sink]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _BUILT_IN:
            log.warning("sink plugin %s (%s) ignored: %r is a built-in sink", ep.name, ep.value, ep.name)
            continue
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not stop keyward
            log.warning("sink plugin %s (%s) failed to load: %s", ep.name, ep.value, exc)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Sink)):
            log.warning("sink plugin %s (%s) is not a Sink subclass; ignored", ep.name, ep.value)
            continue
        found[ep.name] = cls
    return found


def sink_types() -> dict[str, type[Sink]]:
    """Return every sink type by configuration name: the built-ins, then installed plugins."""
    return {**_BUILT_IN, **_plugin_types()}


def build_sink(pool: str, type_name: str, options: dict[str, Any]) -> Sink:
    """Build the sink named `type_name` for `pool` from its config table.

    `options` may still hold the `type` key of the table; it is dropped. Raise ConfigError for an
    unknown type (naming the known ones) or for options the sink rejects.
    """
    cls = _BUILT_IN.get(type_name)
    if cls is None:
        plugins = _plugin_types()
        cls = plugins.get(type_name)
        if cls is None:
            import difflib

            known = sorted({*_BUILT_IN, *plugins})
            close = difflib.get_close_matches(type_name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"pool {pool!r}: unknown sink type {type_name!r}{hint} (known: {', '.join(known)})"
            )
    opts = {k: v for k, v in options.items() if k != "type"}
    return cls(pool, **opts)
