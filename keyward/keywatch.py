"""The pool's published key and state, re-read only when the daemon rewrote them.

Programs that run for days (`keyward exec`, the google-genai helper) ask for the key before every
call or every few hundred milliseconds. Reading the configuration and the database each time would
cost milliseconds; a `stat` of the published file costs microseconds. The file sink replaces the
file by rename, so a new key always comes with a new inode: comparing (inode, mtime, size) finds
every change. A pool without a file sink (keyring only) is asked again at most every `recheck`
seconds through `keyward.client.current_key`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

from keyward.errors import NothingPublished

RECHECK = 2.0  # seconds between keyring reads for pools without a file sink


@dataclass(frozen=True)
class PoolState:
    """What the publisher last said about a pool, without the secret.

    `all_exhausted` is true when every project is out of quota; the published key is then the one
    that frees up first, at `exhausted_until` (None when unknown). A program should wait until then
    instead of sending requests that will only get 429s.
    """

    pool: str
    key_id: str | None
    project_id: str | None
    masked: str | None
    all_exhausted: bool
    exhausted_until: datetime | None
    published: bool
    published_at: datetime | None
    reason: str | None

    def seconds_until_available(self, now: datetime | None = None) -> float:
        """Return how long to wait before a request can succeed: 0 unless every project is exhausted."""
        if not self.all_exhausted or self.exhausted_until is None:
            return 0.0
        from datetime import timezone

        now = now or datetime.now(timezone.utc)
        return max(0.0, (self.exhausted_until - now).total_seconds())


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def parse_state(pool: str, raw: Mapping[str, Any]) -> PoolState:
    """Build a PoolState from the state file's JSON (unknown or missing fields become None)."""
    def text(name: str) -> str | None:
        value = raw.get(name)
        return value if isinstance(value, str) else None

    return PoolState(pool=pool, key_id=text("key_id"), project_id=text("project_id"), masked=text("masked"),
                     all_exhausted=raw.get("all_exhausted") is True,
                     exhausted_until=_time(raw.get("exhausted_until")),
                     published=raw.get("published") is True, published_at=_time(raw.get("published_at")),
                     reason=text("reason"))


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class KeyWatch:
    """The published key and state of one pool, cached until their files change.

    Built once per process from the validated configuration: raise ConfigError for a bad one,
    NotFound-free (an unknown pool simply has nothing published: NothingPublished on `key()`).
    """

    def __init__(self, pool: str = "default", *, config_path: str | None = None,
                 env: Mapping[str, str] | None = None, recheck: float = RECHECK):
        from keyward.client import pool_sinks, published_state_path
        from keyward.config import find_config_path, load_config

        self.pool = pool
        self.config_path = config_path
        self.env = env
        self.recheck = recheck
        self.config = load_config(find_config_path(config_path, env=env), env=env)
        self.state_path = str(published_state_path(self.config.runtime_dir, pool))
        self.file: tuple[str, str, tuple[str, ...] | None] | None = None
        for sink in pool_sinks(self.config, pool):
            if sink.type == "file":
                self.file = (str(sink.options["path"]), sink.options.get("format", "raw"),
                             sink.options.get("variables"))
                break
        self._key_stamp: Any = None
        self._key: str | None = None
        self._key_read_at = 0.0
        self._state_stamp: Any = None
        self._state: PoolState | None = None

    @property
    def path(self) -> str | None:
        """The published key file this watch reads, if the pool has one."""
        return None if self.file is None else self.file[0]

    def key(self) -> str:
        """Return the key published now; raise NothingPublished when there is none (yet)."""
        if self.file is not None:
            path, format, variables = self.file
            stamp = _stamp(path)
            if stamp is None or stamp != self._key_stamp:
                from keyward.published import read_published_file

                try:
                    self._key = read_published_file(path, format, variables)
                except OSError as exc:
                    raise NothingPublished(f"pool {self.pool!r}: cannot read {path}: {exc.strerror}") from None
                self._key_stamp = stamp
            if self._key is None:
                raise NothingPublished(f"pool {self.pool!r} has no key published in {path} yet: "
                                       "is the daemon running?")
            return self._key
        if self._key is None or time.monotonic() - self._key_read_at >= self.recheck:
            from keyward.client import current_key

            self._key = current_key(self.pool, config_path=self.config_path, env=self.env)
            self._key_read_at = time.monotonic()
        return self._key

    def state(self) -> PoolState:
        """Return what the publisher last recorded for the pool; raise NothingPublished without it."""
        stamp = _stamp(self.state_path)
        if stamp is None:
            raise NothingPublished(f"pool {self.pool!r} has no state file at {self.state_path}: "
                                   "nothing was published yet (is the daemon running?)")
        if stamp != self._state_stamp or self._state is None:
            try:
                with open(self.state_path, encoding="utf-8") as fh:
                    raw = json.load(fh)
            except (OSError, ValueError) as exc:
                raise NothingPublished(f"pool {self.pool!r}: cannot read {self.state_path}: {exc}") from None
            self._state = parse_state(self.pool, raw if isinstance(raw, dict) else {})
            self._state_stamp = stamp
        return self._state

    def runtime_dir(self) -> Path:
        return self.config.runtime_dir
