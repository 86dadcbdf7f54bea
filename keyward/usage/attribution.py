"""Which project (and key, and model) a report is about.

Quota is per project, so a report is attributed to the project whose key it used: the key string
(found by its fingerprint), the key id, or, when neither is given, the pool's current key. The
model is the report's own or, when it names none, the model of the key's pool. Attribution reads
plain rows in one query: it runs for every report.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from keyward.errors import NotFound, NothingPublished
from keyward.storage import usage_queries as uq

DEFAULT_POOL = "default"


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


class Resolver:
    """Resolves many reports in one transaction, looking each distinct identity up once."""

    def __init__(self, s: Session):
        self.s = s
        self._cache: dict[tuple, Target] = {}

    def __call__(self, *, key_sha256=None, key_id=None, pool=None, model=None) -> Target:
        ident = (key_sha256, key_id, pool, model)
        target = self._cache.get(ident)
        if target is None:
            target = self._cache[ident] = resolve(self.s, key_sha256=key_sha256, key_id=key_id, pool=pool,
                                                  model=model)
        return target
