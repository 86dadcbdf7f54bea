"""The light API other Python tools import: `from keyward import client`.

`current_key(pool)` reads what the daemon published (a file sink, else the keyring, else the
database) and `report(...)` / `report_error(...)` tell keyward what a key was used for. Importing this
module costs next to nothing: the heavy parts load only on the path that needs them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from keyward.errors import KeywardError, NotFound, NothingPublished, StorageError
from keyward.published import published_state_path

if TYPE_CHECKING:
    from keyward.keywatch import PoolState




def read_published_state(runtime_dir: Path, pool: str) -> dict[str, Any] | None:
    from keyward.published import read_small_file

    try:
        text = read_small_file(published_state_path(runtime_dir, pool), 64 * 1024)
        return json.loads(text) if text is not None else None
    except (OSError, ValueError, RecursionError):
        return None


def state(pool: str = "default", *, config_path: str | None = None,
          env: Mapping[str, str] | None = None) -> "PoolState":
    """Return what is published for `pool` now: key id, whether every project is exhausted, and
    until when (`exhausted_until`), read from the publisher's state file (no database, no secret).

    A program that gets `all_exhausted` should sleep `state.seconds_until_available()` rather than
    send requests that can only fail. Raise NothingPublished when nothing was published yet.
    """
    from keyward.keywatch import KeyWatch

    return KeyWatch(pool, config_path=config_path, env=env).state()


def pool_sinks(config, pool: str):
    """The sinks a pool publishes to (see keyward.config.pools.pool_sinks)."""
    from keyward.config.pools import pool_sinks as sinks

    return sinks(config, pool)


def current_key(pool: str = "default", *, config_path: str | None = None,
                env: Mapping[str, str] | None = None) -> str:
    """Return the key currently published for `pool`.

    Raise NotFound when the pool is unknown or nothing is published yet; ConfigError for a bad config.
    """
    from keyward.config import find_config_path, load_config

    config = load_config(find_config_path(config_path, env=env), env=env)
    sinks = pool_sinks(config, pool)
    for sink in sinks:
        if sink.type == "file":
            from keyward.published import read_published_file

            try:
                secret = read_published_file(sink.options["path"], sink.options.get("format", "raw"),
                                             sink.options.get("variables"))
            except OSError as exc:
                raise KeywardError(f"pool {pool!r}: cannot read the published file: "
                                   f"{exc.strerror or exc}") from None
            if secret:
                return secret
    for sink in sinks:
        if sink.type not in ("file", "null"):
            from keyward.sinks import build_sink

            secret = build_sink(pool, sink.type, dict(sink.options)).read()
            if secret:
                return secret
    state = read_published_state(config.runtime_dir, pool) or {}
    if state.get("budget_spent"):
        raise NothingPublished(f"pool {pool!r} spent its budget and its key is withdrawn until the "
                               "budget's period ends (see `keyward status`)")
    try:
        return _from_database(config, pool)
    except StorageError as exc:
        # A reader of the system service (a member of group keyward) may read the published files
        # but not the service's database: what it needs to hear is that nothing is published.
        where = ", ".join(str(s.options["path"]) for s in sinks if s.type == "file") or "no file sink"
        raise NothingPublished(f"no key published for pool {pool!r} ({where}), and the database is not "
                               f"readable here ({exc}): is the keyward service running?") from None


def _from_database(config, pool: str) -> str:
    from keyward.context import Context
    from keyward.storage import store as q

    with Context(config) as ctx, ctx.store.read() as s:
        row = q.find_pool(s, pool)
        if row is None:
            raise NotFound(f"no pool named {pool!r}")
        if row.current_key_id is None:
            raise NothingPublished(f"pool {pool!r} has no published key yet: is the daemon running? "
                           "(`keyward run`, or `keyward run --once`)")
        key = q.get_key(s, row.current_key_id)
        if not key.secret:
            raise KeywardError(f"the current key {key.key_id} of pool {pool!r} has no stored secret")
        return key.secret


def report(pool: str | None = None, *, key: str | None = None, key_id: str | None = None,
           model: str | None = None, requests: int = 1, input_tokens: int = 0, output_tokens: int = 0,
           config_path: str | None = None) -> None:
    """Record usage of a key (identified by the key string, its id, or the pool's current key)."""
    from keyward.usage.reporter import send_usage

    send_usage(pool=pool, key=key, key_id=key_id, model=model, requests=requests,
               input_tokens=input_tokens, output_tokens=output_tokens, config_path=config_path)


def report_error(http_status: int, body: bytes | str | dict | None, *, pool: str | None = None,
                 key: str | None = None, key_id: str | None = None, model: str | None = None,
                 config_path: str | None = None) -> None:
    """Record a Gemini error response (a 429 quota error, an invalid key) exactly as it came."""
    from keyward.usage.reporter import send_error

    send_error(http_status, body, pool=pool, key=key, key_id=key_id, model=model, config_path=config_path)
