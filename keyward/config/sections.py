"""The schema of keyward's fixed tables ([rotation], [usage], [selection], [daemon], [google]).

Each table's schema is a mapping from key to checker; `build_section` applies it, reports unknown
keys with a did-you-mean, and constructs the dataclass from the valid values (defaults fill the
rest). Checks that relate two keys of one table live next to the table's schema.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from keyward.config import values as v
from keyward.config.durations import format_duration
from keyward.config.model import DaemonConfig, GoogleConfig, RotationConfig, SelectionConfig, UsageConfig
from keyward.config.problems import KeyPath, Problems, describe

SECOND, MINUTE, HOUR, DAY = timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
# Keys younger than this are never rotated: short enough for an accelerated demo, long enough that a
# typo ("7s" for "7d") cannot turn the daemon into a key factory hitting the API Keys write quota.
MIN_KEY_AGE = 10 * SECOND

# 10,000 projects at 375 per metrics scope need 27 scopes; a few hundred is far beyond any use.
MAX_METRICS_SCOPES = 1000

PROJECT_ID_PATTERN = r"[a-z][a-z0-9-]{4,28}[a-z0-9]"
PROJECT_ID_HINT = (
    "a Google Cloud project id is 6 to 30 lowercase letters, digits or hyphens, "
    "starting with a letter and not ending with a hyphen"
)

ROTATION: dict[str, v.Checker] = {
    "min_age": v.duration(MIN_KEY_AGE),
    "max_age": v.duration(MIN_KEY_AGE),
    "grace": v.duration(),
    "verify": v.boolean,
    "retry_backoff": v.duration(SECOND),
    "max_backoff": v.duration(SECOND),
    "operation_timeout": v.duration(SECOND),
    "retry_budget": v.duration(),
    "invalid_interval": v.duration(),
}
USAGE: dict[str, v.Checker] = {
    "poll_interval": v.duration(10 * SECOND),
    "monitoring": v.boolean,
    "minute_retention": v.duration(HOUR),
    "day_retention": v.duration(DAY),
    "monitoring_lag": v.duration(maximum=DAY),
    "poll_workers": v.int_between(1, 64),
    "monitoring_reads_per_minute": v.int_between(1, 1_000_000),
    "metrics_scopes": v.text_list(v.text(PROJECT_ID_PATTERN, PROJECT_ID_HINT), MAX_METRICS_SCOPES),
}
SELECTION: dict[str, v.Checker] = {
    "margin": v.fraction,
    "interval": v.duration(SECOND),
}
UNIX_SOCKET_MAX = 107  # sun_path holds 108 bytes including the terminating NUL


def _socket_path(value: Any, path: KeyPath, problems: Problems) -> Any:
    result = v.absolute_path(empty_is_none=True)(value, path, problems)
    if isinstance(result, Path) and len(os.fsencode(result)) > UNIX_SOCKET_MAX:
        problems.add(path, f"a Unix socket path is at most {UNIX_SOCKET_MAX} bytes; {value!r} is longer")
        return v.INVALID
    return result


DAEMON: dict[str, v.Checker] = {
    "rotation_check": v.duration(SECOND),
    "jitter": v.duration(),
    "heartbeat": v.duration(SECOND),
    "verify_invalid": v.duration(MINUTE),
    "prune_interval": v.duration(MINUTE),
    "ingest_socket": _socket_path,
    "ingest_tcp": v.loopback_address,
    "metrics": v.loopback_address,
    "lock_file": v.absolute_path(empty_is_none=True),
    "lease": v.duration(SECOND, maximum=10 * MINUTE),
}
GOOGLE: dict[str, v.Checker] = {
    "credentials": v.absolute_path(empty_is_none=True),
    "quota_project": v.text(PROJECT_ID_PATTERN, PROJECT_ID_HINT, empty_is_none=True),
}
SECTIONS: dict[str, tuple[type, dict[str, v.Checker]]] = {
    "rotation": (RotationConfig, ROTATION),
    "usage": (UsageConfig, USAGE),
    "selection": (SelectionConfig, SELECTION),
    "daemon": (DaemonConfig, DAEMON),
    "google": (GoogleConfig, GOOGLE),
}


def table_or_none(value: Any, path: KeyPath, problems: Problems) -> dict | None:
    """Return `value` if it is a table, else record "expected a table" and return None."""
    if isinstance(value, dict):
        return value
    problems.add(path, f"expected a table, got {describe(value)}")
    return None


def check_fields(table: dict, schema: dict[str, v.Checker], path: KeyPath, problems: Problems) -> dict[str, Any]:
    """Check every key of `table` against `schema`; return the valid values, converted."""
    problems.unknown_keys(table, schema, path)
    values = {}
    for key, checker in schema.items():
        if key in table:
            result = checker(table[key], (*path, key), problems)
            if result is not v.INVALID:
                values[key] = result
    return values


def build_section(name: str, raw: Any, problems: Problems) -> tuple[Any, dict[str, Any]]:
    """Return (the section's dataclass, the values the file set) for top-level table `name`."""
    cls, schema = SECTIONS[name]
    table = table_or_none(raw, (name,), problems) if raw is not None else {}
    values = check_fields(table or {}, schema, (name,), problems)
    section = cls(**values)
    if name == "rotation":
        _check_rotation(section, values, problems)
    return section, values


def _check_rotation(rotation: RotationConfig, given: dict[str, Any], problems: Problems) -> None:
    if rotation.min_age > rotation.max_age:
        key = "min_age" if "min_age" in given else "max_age"
        problems.add(("rotation", key), ages_message(rotation.min_age, rotation.max_age))
    if rotation.retry_backoff > rotation.max_backoff:
        key = "retry_backoff" if "retry_backoff" in given else "max_backoff"
        problems.add(
            ("rotation", key),
            f"retry_backoff ({format_duration(rotation.retry_backoff)}) is longer than max_backoff ({format_duration(rotation.max_backoff)})",
        )


def ages_message(min_age: timedelta, max_age: timedelta) -> str:
    return (
        f"min_age ({format_duration(min_age)}) is longer than max_age ({format_duration(max_age)}): "
        "a key must become due for rotation before it is overdue"
    )
