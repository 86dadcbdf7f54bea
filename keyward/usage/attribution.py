"""Which project (and key, and model) a report is about.

Quota is per project, so a report is attributed to the project whose key it used: the key string
(found by its fingerprint), the key id, or, when neither is given, the pool's current key. The
model is the report's own or, when it names none, the model of the key's pool.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from keyward.errors import NotFound, NothingPublished
from keyward.keystrings import mask
from keyward.storage import store as q
from keyward.storage.models import Key, Pool, Project

DEFAULT_POOL = "default"


@dataclass(frozen=True)
class Target:
    """The key, project, pool and model a report counts against."""

    key: Key
    project: Project
    pool: Pool
    model: str


def resolve(s: Session, *, key: str | None = None, key_id: str | None = None,
            pool: str | None = None, model: str | None = None) -> Target:
    """Return the Target of a report.

    Raise NotFound when the key string, key id or pool is unknown (the message masks the key),
    NothingPublished when only a pool is named and it has no current key.
    """
    named_pool = q.get_pool(s, pool) if pool is not None else None
    if key is not None:
        found = q.find_key_by_secret(s, key)
        if found is None:
            raise NotFound(f"the reported key {mask(key)} is not one keyward knows "
                           "(see `keyward key list`)")
    elif key_id is not None:
        found = q.get_key(s, key_id)
    else:
        named_pool = named_pool or q.get_pool(s, DEFAULT_POOL)
        if named_pool.current_key_id is None:
            raise NothingPublished(f"pool {named_pool.name!r} has no current key to attribute the "
                                   "report to: name the key (--key-id or --key-stdin)")
        found = q.get_key(s, named_pool.current_key_id)
    project = found.project
    return Target(found, project, project.pool, model or project.pool.model)


class Resolver:
    """Resolves many reports in one transaction, looking each distinct identity up once."""

    def __init__(self, s: Session):
        self.s = s
        self._cache: dict[tuple, Target] = {}

    def __call__(self, *, key=None, key_id=None, pool=None, model=None) -> Target:
        ident = (key, key_id, pool, model)
        target = self._cache.get(ident)
        if target is None:
            target = self._cache[ident] = resolve(self.s, key=key, key_id=key_id, pool=pool,
                                                  model=model)
        return target
