"""Which project (and key, and model) a report is about.

Quota is per project, so a report is attributed to the project whose key it used: the key string
(found by its fingerprint), the key id, or, when neither is given, the pool's current key. The
model is the report's own or, when it names none, the model of the key's pool. Attribution reads
plain rows in one query: it runs for every report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from keyward.errors import NotFound, NothingPublished
from keyward.storage import usage_queries as uq

DEFAULT_POOL = "default"
KNOWN_TTL = 2.0  # seconds a kept lookup of a named key is trusted (see KnownKeys)
MAX_KNOWN = 100_000  # kept lookups at most


@dataclass(frozen=True)
class Target:
    """The key (with its project and pool) a report counts against, and the model."""

    key: uq.KeyTarget
    model: str


def _pool(s: Session, name: str) -> tuple[str, str | None, str]:
    found = uq.pool_current(s, name)
    if found is None:
        raise NotFound(f"no pool named {name!r} (see `keyward pool list`)")
    return found


def resolve(s: Session, *, key_sha256: str | None = None, key_id: str | None = None,
            pool: str | None = None, model: str | None = None) -> Target:
    """Return the Target of a report.

    Raise NotFound when the key (by fingerprint), key id or pool is unknown,
    NothingPublished when only a pool is named and it has no current key.
    """
    named_pool = _pool(s, pool) if pool is not None else None
    if key_sha256 is not None:
        found = uq.key_target(s, fingerprint=key_sha256)
        if found is None:
            raise NotFound(f"the reported key (sha256 {key_sha256[:12]}…) is not one keyward "
                           "knows (see `keyward key list`)")
    elif key_id is not None:
        found = uq.key_target(s, key_id=key_id)
        if found is None:
            raise NotFound(f"no key {key_id!r} (see `keyward key list`)")
    else:
        name, current, _model = named_pool or _pool(s, DEFAULT_POOL)
        if current is None:
            raise NothingPublished(f"pool {name!r} has no current key to attribute the report "
                                   "to: name the key (--key-id or --key-stdin)")
        found = uq.key_target(s, key_id=current)
        if found is None:
            raise NotFound(f"the current key {current!r} of pool {name!r} no longer exists")
    return Target(found, model or found.pool_model)


class KnownKeys:
    """Targets of reports that name their key, kept across transactions by a long-lived writer
    (the ingest socket), so a stream of reports costs no key lookup each.

    A key never moves to another project, but its project can move to another pool, the pool's
    model can change, the key can be removed: an entry is trusted for `ttl` seconds only, and
    `clear()` drops all at once (after a failed commit, a reload). A report naming only its pool is
    never kept here: it counts against the pool's current key, which a 429 changes at any moment.
    """

    def __init__(self, ttl: float = KNOWN_TTL, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self._clock = clock
        self._targets: dict[tuple, tuple[float, Target]] = {}
        self._source: object = None

    def bind(self, source: object) -> None:
        """Say which database the next lookups come from; a different one drops everything kept
        (a reload can move the database, where the same key has another row number)."""
        if source is not self._source:
            self._targets.clear()
            self._source = source

    def get(self, ident: tuple) -> Target | None:
        found = self._targets.get(ident)
        if found is None or found[0] <= self._clock():
            return None
        return found[1]

    def put(self, ident: tuple, target: Target) -> None:
        if len(self._targets) >= MAX_KNOWN:  # a bound whatever the reporters send
            self._targets.clear()
        self._targets[ident] = (self._clock() + self.ttl, target)

    def clear(self) -> None:
        self._targets.clear()


class Resolver:
    """Resolves many reports in one transaction, looking each distinct identity up once (and,
    with `known`, not at all while a recent lookup of a named key holds)."""

    def __init__(self, s: Session, known: KnownKeys | None = None):
        self.s = s
        self.known = known
        self._cache: dict[tuple, Target] = {}

    def __call__(self, *, key_sha256=None, key_id=None, pool=None, model=None) -> Target:
        ident = (key_sha256, key_id, pool, model)
        target = self._cache.get(ident)
        if target is not None:
            return target
        keep = self.known is not None and (key_sha256 is not None or key_id is not None)
        if keep:
            target = self.known.get(ident)
        if target is None:
            target = resolve(self.s, key_sha256=key_sha256, key_id=key_id, pool=pool, model=model)
            if keep:
                self.known.put(ident, target)
        self._cache[ident] = target
        return target
