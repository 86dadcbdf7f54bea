"""The schema of `[pools.NAME]` tables and their `[[pools.NAME.sinks]]`.

A pool is a set of projects that share one published key. Its sinks say where that key goes;
their `type` names a sink implementation. The three built-in types have their options checked
here; types added by plugins (the `sink_types` the caller passes) keep their options as written,
for the plugin to check. File sink options are normalized: `path` becomes a Path, `mode` an int.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from pathlib import Path
from typing import Any

from keyward.config import values as v
from keyward.config.model import DEFAULT_POOL, PoolConfig, SinkConfig
from keyward.config.problems import KeyPath, Problems, describe, did_you_mean
from keyward.config.sections import check_fields, table_or_none

POOL_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}"
POOL_NAME_HINT = "a pool name is letters, digits, '-' and '_' (at most 63), starting with a letter or digit"
MODEL_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]*"
MODEL_HINT = "expected a Gemini model name like 'gemini-2.5-flash'"

POOL: dict[str, v.Checker] = {
    "model": v.text(MODEL_PATTERN, MODEL_HINT),
    "margin": v.fraction,
    "sinks": lambda value, path, problems: value,  # checked by build_sinks, which needs the pool name
    "post_publish": v.argv,
    "post_publish_timeout": v.duration(timedelta(seconds=1), timedelta(hours=1)),
}

FILE_MODES = {"0600": 0o600, "0640": 0o640, "600": 0o600, "640": 0o640}


def _mode(value: Any, path: KeyPath, problems: Problems) -> Any:
    """A file mode "0600" or "0640": a string, an octal TOML int (0o600) or the digits as an int (600)."""
    if isinstance(value, int) and not isinstance(value, bool) and value in (0o600, 0o640):
        return value
    if isinstance(value, (int, str)) and not isinstance(value, bool) and str(value) in FILE_MODES:
        return FILE_MODES[str(value)]
    problems.add(path, f"expected \"0600\" or \"0640\" (the key file is never world-readable), got {describe(value)}")
    return v.INVALID


FILE_SINK: dict[str, v.Checker] = {
    "type": lambda value, path, problems: value,
    "path": v.absolute_path(),
    "format": v.choice(("raw", "env")),
    "mode": _mode,
    "group": v.text(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", "expected a group name", empty_is_none=True),
}
KEYRING_SINK: dict[str, v.Checker] = {
    "type": lambda value, path, problems: value,
    "service": v.text(r".+", "must not be empty"),
    "username": v.text(r".+", "must not be empty"),
    # A keyring backend class by dotted name, when the environment's default is not the one wanted.
    "backend": v.text(r"[A-Za-z_][A-Za-z0-9_.]*\.[A-Za-z_][A-Za-z0-9_]*", "expected a dotted class name like "
                      "'keyring.backends.SecretService.Keyring'"),
}
NULL_SINK: dict[str, v.Checker] = {"type": lambda value, path, problems: value}


def default_file_sink(path: Path) -> SinkConfig:
    """Return the sink a pool gets when it declares none: the raw key in a 0600 file."""
    return SinkConfig("file", {"path": path, "format": "raw", "mode": 0o600, "group": None})


def pool_sinks(config, pool: str) -> tuple[SinkConfig, ...]:
    """The sinks a pool publishes to: as configured, or the default file sink for pools the CLI added."""
    pool_cfg = config.pools.get(pool)
    if pool_cfg is not None:
        return tuple(pool_cfg.sinks)
    return (default_file_sink(config.runtime_dir / f"{pool}.key"),)


def build_sink(raw: Any, path: KeyPath, pool: str, sink_types: Collection[str], problems: Problems) -> SinkConfig | None:
    table = table_or_none(raw, path, problems)
    if table is None:
        return None
    kind = table.get("type")
    if kind is None:
        problems.add((*path, "type"), f"missing required key 'type' (one of: {', '.join(sorted(sink_types))})")
        return None
    if not isinstance(kind, str):
        problems.add((*path, "type"), f"expected a sink type name, got {describe(kind)}")
        return None
    if kind not in sink_types:
        problems.add((*path, "type"), did_you_mean(kind, sink_types, "sink type"))
        return None
    if kind == "file":
        options = check_fields(table, FILE_SINK, path, problems)
        if "path" not in table:
            problems.add((*path, "path"), "missing required key 'path': the absolute path of the key file")
        options = {"format": "raw", "mode": 0o600, "group": None, **options}
    elif kind == "keyring":
        options = {"service": "keyward", "username": pool, **check_fields(table, KEYRING_SINK, path, problems)}
    elif kind == "null":
        options = check_fields(table, NULL_SINK, path, problems)
    else:
        options = dict(table)  # a plugin's sink: it checks its own options
    options.pop("type", None)
    return SinkConfig(kind, options)


def build_pool(name: str, raw: Any, runtime_dir: Path, sink_types: Collection[str], problems: Problems) -> PoolConfig | None:
    path: KeyPath = ("pools", name)
    table = table_or_none(raw, path, problems)
    if table is None:
        return None
    if v.text(POOL_NAME_PATTERN, POOL_NAME_HINT)(name, path, problems) is v.INVALID:
        return None
    values = check_fields(table, POOL, path, problems)
    if "sinks" in values:
        raw_sinks = values.pop("sinks")
        if isinstance(raw_sinks, list):
            sinks = [build_sink(s, (*path, "sinks", i), name, sink_types, problems) for i, s in enumerate(raw_sinks)]
            values["sinks"] = tuple(s for s in sinks if s is not None)
        else:
            problems.add((*path, "sinks"), f"expected [[pools.{name}.sinks]] tables, got {describe(raw_sinks)}")
    values.setdefault("sinks", (default_file_sink(runtime_dir / f"{name}.key"),))
    return PoolConfig(name=name, **values)


def build_pools(raw: Any, runtime_dir: Path, sink_types: Collection[str], problems: Problems) -> dict[str, PoolConfig]:
    """Return the pools the file declares (with their sinks), recording every problem found."""
    if raw is None:
        return {}
    table = table_or_none(raw, ("pools",), problems) or {}
    pools = {}
    for name, pool_raw in table.items():
        pool = build_pool(name, pool_raw, runtime_dir, sink_types, problems)
        if pool is not None:
            pools[name] = pool
    _check_shared_sinks(pools, problems)
    return pools


def implicit_pool(runtime_dir: Path) -> PoolConfig:
    """Return the pool "default" that exists without being declared."""
    return PoolConfig(DEFAULT_POOL, sinks=(default_file_sink(runtime_dir / f"{DEFAULT_POOL}.key"),), declared=False)


def _check_shared_sinks(pools: dict[str, PoolConfig], problems: Problems) -> None:
    """Two pools publishing to one file or keyring entry would overwrite each other's key."""
    seen: dict[Any, str] = {}
    for pool in pools.values():
        for index, sink in enumerate(pool.sinks):
            if sink.type == "file" and "path" in sink.options:
                target, key = ("file", str(sink.options["path"])), "path"
            elif sink.type == "keyring":
                target, key = ("keyring", sink.options["service"], sink.options["username"]), "service"
            else:
                continue
            here = f"pools.{pool.name}.sinks[{index}]"
            if target in seen and not seen[target].startswith(f"pools.{pool.name}.sinks["):
                problems.add(
                    ("pools", pool.name, "sinks", index, key),
                    f"publishes to the same place as {seen[target]}: two pools would overwrite each other's key",
                )
            seen.setdefault(target, here)
