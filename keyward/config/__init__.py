"""keyward's configuration: a strict TOML schema, loaded with every problem reported at once.

Flow: `find_config_path` picks the file (--config, $KEYWARD_CONFIG, the user's file, the system
file), `load_config` parses and checks it and applies environment overrides, and the rest of
keyward reads the frozen `Config` it returns. Only the standard library is imported here:
`keyward current` loads the configuration on its hot path.
"""

from keyward.config.durations import DurationError, format_duration, parse_duration
from keyward.config.example import example_config
from keyward.config.load import load_config
from keyward.config.model import (
    DEFAULT_MODEL,
    DEFAULT_POOL,
    DEFAULT_SINK_TYPES,
    Config,
    DaemonConfig,
    GoogleConfig,
    LimitConfig,
    PoolConfig,
    ProjectConfig,
    RotationConfig,
    SelectionConfig,
    SinkConfig,
    UsageConfig,
)
from keyward.config.paths import (
    config_search_path,
    default_runtime_dir,
    default_state_dir,
    find_config_path,
    user_config_path,
)

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_POOL",
    "DEFAULT_SINK_TYPES",
    "Config",
    "DaemonConfig",
    "DurationError",
    "GoogleConfig",
    "LimitConfig",
    "PoolConfig",
    "ProjectConfig",
    "RotationConfig",
    "SelectionConfig",
    "SinkConfig",
    "UsageConfig",
    "config_search_path",
    "default_runtime_dir",
    "default_state_dir",
    "example_config",
    "find_config_path",
    "format_duration",
    "load_config",
    "parse_duration",
    "user_config_path",
]
