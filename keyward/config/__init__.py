"""keyward's configuration: a strict TOML schema, loaded with every problem reported at once.

Flow: `find_config_path` picks the file (--config, $KEYWARD_CONFIG, the user's file, the system
file), `load_config` parses and checks it and applies environment overrides, and the rest of
keyward reads the frozen `Config` it returns. Only the standard library is used, and the names
below load on first use (PEP 562), so `keyward current` can import `keyward.config.paths` without
paying for the schema.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "DurationError": "durations", "format_duration": "durations", "parse_duration": "durations",
    "example_config": "example",
    "load_config": "load",
    "DEFAULT_MODEL": "model", "DEFAULT_POOL": "model", "DEFAULT_SINK_TYPES": "model", "Config": "model",
    "DaemonConfig": "model", "GoogleConfig": "model", "LimitConfig": "model", "PoolConfig": "model",
    "ProjectConfig": "model", "RotationConfig": "model", "SelectionConfig": "model", "SinkConfig": "model",
    "UsageConfig": "model",
    "config_search_path": "paths", "default_runtime_dir": "paths", "default_state_dir": "paths",
    "find_config_path": "paths", "user_config_path": "paths",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'keyward.config' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"keyward.config.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
