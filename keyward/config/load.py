"""Reading keyward's configuration: file, then environment, then derived defaults.

`load_config` either returns a complete `Config` or raises one `ConfigError` whose `problems`
list every problem found, each as "FILE:LINE: at 'key.path': message". Nothing here touches the
database or the network, and the imports stay within the standard library, because
`keyward current` loads the configuration on every call.

Precedence, highest first: environment (KEYWARD_STATE_DIR, KEYWARD_RUNTIME_DIR,
KEYWARD_DATABASE_URL), the file, built-in defaults. Defaults that hang off other values (the
database under state_dir, sockets and key files under runtime_dir) follow the final values.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from keyward.config import values as v
from keyward.config.model import DEFAULT_POOL, DEFAULT_SINK_TYPES, LOG_LEVELS, Config, DaemonConfig, GoogleConfig
from keyward.config.paths import (credentials_directory_file, default_runtime_dir, default_state_dir,
                                  is_system_config)
from keyward.config.pools import build_pools, implicit_pool
from keyward.config.problems import Problems, format_path
from keyward.config.projects import build_projects, check_pool_references
from keyward.config.sections import SECTIONS, build_section, check_fields
from keyward.errors import ConfigError

log = logging.getLogger(__name__)

# The databases keyward works with; anything else would pass the config check and fail every command.
DATABASE_URL_PATTERN = r"(sqlite(\+pysqlite)?|postgres(ql)?(\+(psycopg|psycopg2))?)://.*"
TOP_LEVEL: dict[str, v.Checker] = {
    "state_dir": v.absolute_path(),
    "runtime_dir": v.absolute_path(),
    "database": v.text(DATABASE_URL_PATTERN, "expected an SQLAlchemy URL of SQLite or PostgreSQL like 'sqlite:////var/lib/keyward/keyward.db'"),
    "log_level": v.choice(LOG_LEVELS),
    "master_key_file": v.absolute_path(empty_is_none=True),
}
TABLES = (*SECTIONS, "pools", "projects")
GOOGLE_CREDENTIAL_NAME = "google.json"
_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)\s*$")


def load_config(
    path: Path | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    sink_types: Collection[str] = DEFAULT_SINK_TYPES,
) -> Config:
    """Return the configuration in `path` (built-in defaults when None), with environment overrides.

    `env` defaults to `os.environ`. `sink_types` is the set of sink type names that may appear in
    `[[pools.NAME.sinks]]` (pass the sink registry's names to allow plugins). Raise ConfigError
    listing every problem when the file cannot be read, is not TOML, or breaks the schema.
    """
    env = os.environ if env is None else env
    if path is None:
        name, text, document = None, "", {}
    else:
        source = Path(path).expanduser()
        name = str(path)
        text = _read(source, name)
        document = _parse(text, name)
    problems = Problems()
    config = _build(document, env, sink_types, problems, None if path is None else source.absolute())
    if problems:
        raise ConfigError(
            f"{name or 'configuration'}: {len(problems)} problem(s) found",
            _format_problems(problems, name, text),
        )
    log.debug("configuration loaded from %s", name or "built-in defaults")
    return config


def _read(source: Path, name: str) -> str:
    try:
        data = source.read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError(f"cannot read configuration file {name}", [f"{name}: {reason}"]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ConfigError(f"{name}: not a UTF-8 text file", [f"{name}:{line}: invalid UTF-8 byte"]) from None


def _parse(text: str, name: str) -> dict[str, Any]:
    import tomllib

    try:
        return tomllib.loads(text)
    except RecursionError:
        line = _line_of(text, r"(?:[\[{]\s*){100,}")
        raise ConfigError(f"{name}: not valid TOML", [f"{name}:{line}: arrays or inline tables nested too deeply to read"]) from None
    except ValueError as error:
        if not isinstance(error, tomllib.TOMLDecodeError):  # int(): a number of 4,300+ digits
            line = _line_of(text, r"[0-9_]{1000,}")
            raise ConfigError(f"{name}: not valid TOML", [f"{name}:{line}: a number too long to read (no count keyward takes has more than 16 digits)"]) from None
        message = str(error)
        match = _TOML_POSITION.search(message)
        if match and match.group(1):
            where = f"{name}:{match.group(1)}"
            message = f"{message[: match.start()]} (column {match.group(2)})"
        else:
            where = f"{name}:{text.count(chr(10)) + 1}"
            message = message[: match.start()] + " (at end of file)" if match else message
        raise ConfigError(f"{name}: not valid TOML", [f"{where}: invalid TOML: {message}"]) from None


def _line_of(text: str, pattern: str) -> int:
    found = re.search(pattern, text)
    return text.count("\n", 0, found.start()) + 1 if found else 1


def _env_path(env: Mapping[str, str], variable: str, problems: Problems) -> Path | None:
    value = env.get(variable, "")
    if not value:
        return None
    result = v.absolute_path()(value, (f"${variable}",), problems)
    return None if result is v.INVALID else result


def _build(document: dict, env: Mapping[str, str], sink_types: Collection[str], problems: Problems, source: Path | None) -> Config:
    problems.unknown_keys(document, (*TOP_LEVEL, *TABLES), ())
    top = check_fields({k: document[k] for k in TOP_LEVEL if k in document}, TOP_LEVEL, (), problems)

    system = is_system_config(source)
    state_dir = (_env_path(env, "KEYWARD_STATE_DIR", problems) or top.get("state_dir")
                 or default_state_dir(env, system=system))
    runtime_dir = (
        _env_path(env, "KEYWARD_RUNTIME_DIR", problems)
        or top.get("runtime_dir")
        or default_runtime_dir(env, state_dir=state_dir, system=system)
    )
    database_url = env.get("KEYWARD_DATABASE_URL") or top.get("database") or f"sqlite:///{state_dir}/keyward.db"

    sections: dict[str, Any] = {}
    given: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        sections[section], given[section] = build_section(section, document.get(section), problems)

    daemon: DaemonConfig = sections["daemon"]
    derived: dict[str, Any] = {}
    if "ingest_socket" not in given["daemon"]:
        derived["ingest_socket"] = runtime_dir / "ingest.sock"
    if "lock_file" not in given["daemon"]:
        derived["lock_file"] = _default_lock_file(database_url, state_dir)
    sections["daemon"] = daemon = dataclasses.replace(daemon, **derived)
    if daemon.ingest_tcp and daemon.ingest_tcp == daemon.metrics:
        problems.add(("daemon", "metrics"), f"{daemon.metrics!r} is also daemon.ingest_tcp: use two ports")

    google: GoogleConfig = sections["google"]
    if "credentials" not in given["google"]:
        credential = credentials_directory_file(GOOGLE_CREDENTIAL_NAME, env)
        sections["google"] = GoogleConfig(credentials=credential, quota_project=google.quota_project)

    pools = build_pools(document.get("pools"), runtime_dir, sink_types, problems)
    projects = build_projects(document.get("projects"), sections["rotation"], problems)
    check_pool_references(projects, pools, problems)
    if DEFAULT_POOL not in pools and (not pools or any(p.pool == DEFAULT_POOL for p in projects.values())):
        pools[DEFAULT_POOL] = implicit_pool(runtime_dir)

    return Config(
        source=source,
        state_dir=state_dir,
        runtime_dir=runtime_dir,
        database_url=database_url,
        log_level=top.get("log_level", "info"),
        master_key_file=top.get("master_key_file"),
        pools=pools,
        projects=projects,
        **sections,
    )


def _format_problems(problems: Problems, name: str | None, text: str) -> list[str]:
    """Return "FILE:LINE: at 'key.path': message" lines, environment problems first, then by line."""
    locator = None
    if text:
        from keyward.config.locate import KeyLocator

        locator = KeyLocator(text)
    rows: list[tuple[int, str]] = []
    for path, message in problems.items:
        if path and isinstance(path[0], str) and path[0].startswith("$"):
            rows.append((-1, f"environment variable {path[0][1:]}: {message}"))
            continue
        line = locator.line_of(path) if locator else None
        where = f"{name}:{line}" if line and name else (name or "configuration")
        at = f" at '{format_path(path)}'" if path else ""
        rows.append((line or 0, f"{where}:{at}: {message}" if at else f"{where}: {message}"))
    rows.sort(key=lambda row: row[0])
    from keyward.keystrings import redact

    return [redact(row[1]) for row in rows]  # a key used as a table name is not echoed either


def _default_lock_file(database_url: str, state_dir: Path) -> Path:
    """One daemon per database on a host: a SQLite database's lock sits beside the file, so two
    state directories pointing at one database still exclude each other; other databases lock
    the state directory."""
    prefix = "sqlite:///"
    if database_url.startswith(prefix) and database_url[len(prefix):] not in ("", ":memory:"):
        # The real path: two daemons reaching one file through a symlink must meet at one lock.
        real = os.path.realpath(os.path.expanduser(database_url[len(prefix):].split("?", 1)[0]))
        return Path(real + ".lock")
    return state_dir / "keyward.lock"
