"""The queries on pools, projects, keys, the journal and small values, through the ORM.

The database handle, `Store`, lives in `keyward.storage.database` (and is importable from here).
Services own transactions (`with store.write() as s:`) and call these functions inside them, so one
decision and everything it changes commit together. Usage and rotation-journal queries live beside
this module (`usage_queries`, `rotation_queries`); nothing outside `keyward.storage` writes SQL.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Sequence

from sqlalchemy import case, delete, select
from sqlalchemy.orm import Session, object_session, selectinload

from keyward.errors import MasterKeyError, NotFound
from keyward.keystrings import mask
from keyward.sealing import Sealer, sealed_by
from keyward.storage.database import Store  # noqa: F401  (the handle these queries run in)
from keyward.storage.models import (
    LIVE_STATES,
    ORIGIN_CLI,
    Event,
    Key,
    Limit,
    Meta,
    Pool,
    Project,
    secret_aad,
)

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def fingerprint(secret: str) -> str:
    """Return a stable digest identifying a key string without revealing it."""
    return hashlib.sha256(secret.encode()).hexdigest()


# Pools ---------------------------------------------------------------------------------------------


def get_pool(s: Session, name: str) -> Pool:
    pool = s.scalar(select(Pool).where(Pool.name == name))
    if pool is None:
        raise NotFound(f"no pool named {name!r} (see `keyward pool list`)")
    return pool


def find_pool(s: Session, name: str) -> Pool | None:
    return s.scalar(select(Pool).where(Pool.name == name))


def list_pools(s: Session) -> Sequence[Pool]:
    return s.scalars(select(Pool).order_by(Pool.name)).all()


@dataclass(frozen=True)
class PoolSnapshot:
    """A pool row as plain values, with what its current key is now (None fields: no such key).

    It has the fields of `Pool` that selection and the kept loads read (id, name, model, current
    key), so it stands in for the row on the publisher's read-only pass.
    """

    id: int
    name: str
    model: str
    current_key_id: str | None
    current_reason: str | None
    current_since: datetime | None
    all_exhausted: bool
    published_key_id: str | None
    published_at: datetime | None
    current_state: str | None
    current_has_secret: bool
    current_pool_pk: int | None
    current_project_id: str | None
    current_masked: str | None
    current_fingerprint: str | None


_SNAPSHOTS = None


def pool_snapshots(s: Session, names: Sequence[str] | None = None) -> list[PoolSnapshot]:
    """Return every pool (or those `names`, in that order) with its current key, in one query.

    What the publisher's timer pass reads: no ORM object is built. Raise NotFound for a name that
    is not a pool.
    """
    global _SNAPSHOTS
    if _SNAPSHOTS is None:
        _SNAPSHOTS = (
            select(Pool.id, Pool.name, Pool.model, Pool.current_key_id, Pool.current_reason,
                   Pool.current_since, Pool.all_exhausted, Pool.published_key_id, Pool.published_at,
                   Key.state, Key.sealed.is_not(None), Project.pool_id, Project.project_id, Key.masked,
                   Key.fingerprint)
            .outerjoin(Key, Key.key_id == Pool.current_key_id)
            .outerjoin(Project, Project.id == Key.project_pk)
            .order_by(Pool.name)
        )
    found = {row[1]: PoolSnapshot(*row[:6], bool(row[6]), *row[7:10], bool(row[10]), *row[11:])
             for row in s.connection().execute(_SNAPSHOTS)}
    if names is None:
        return list(found.values())
    for name in names:
        if name not in found:
            raise NotFound(f"no pool named {name!r} (see `keyward pool list`)")
    return [found[name] for name in names]


def upsert_pool(s: Session, name: str, model: str, origin: str = ORIGIN_CLI) -> Pool:
    pool = find_pool(s, name)
    if pool is None:
        pool = Pool(name=name, model=model, origin=origin, created_at=utcnow(), all_exhausted=False)
        s.add(pool)
        s.flush()
    else:
        pool.model = model
        pool.origin = origin
    return pool


# Projects ------------------------------------------------------------------------------------------


def get_project(s: Session, project_id: str) -> Project:
    project = find_project(s, project_id)
    if project is None:
        raise NotFound(f"no project {project_id!r} (see `keyward project list`)")
    return project


def find_project(s: Session, project_id: str) -> Project | None:
    return s.scalar(select(Project).where(Project.project_id == project_id))


def list_projects(s: Session, pool: str | None = None) -> Sequence[Project]:
    q = (
        select(Project)
        .options(selectinload(Project.pool), selectinload(Project.limits))
        .order_by(Project.project_id)
    )
    if pool is not None:
        q = q.join(Pool).where(Pool.name == pool)
    return s.scalars(q).all()


def upsert_project(s: Session, project_id: str, pool: Pool, **fields) -> Project:
    """Create the project or update the given fields; return it."""
    project = find_project(s, project_id)
    if project is None:
        project = Project(project_id=project_id, pool=pool, created_at=utcnow(), rotation_failures=0,
                          allowed_ips="", managed=False)
        s.add(project)
    project.pool = pool
    for name, value in fields.items():
        setattr(project, name, value)
    s.flush()
    return project


def remove_pool(s: Session, pool: Pool) -> None:
    s.delete(pool)
    s.flush()


def remove_project(s: Session, project: Project) -> None:
    s.delete(project)
    s.flush()


def set_limit(s: Session, project: Project, model: str, *, rpm, tpm, rpd, source: str) -> Limit:
    limit = s.scalar(select(Limit).where(Limit.project_pk == project.id, Limit.model == model))
    if limit is None:
        limit = Limit(project_pk=project.id, model=model)
        s.add(limit)
    # Limits from the config are the operator's word; Google's figures never overwrite them.
    if limit.source == "config" and source == "google":
        return limit
    limit.rpm, limit.tpm, limit.rpd, limit.source, limit.updated_at = rpm, tpm, rpd, source, utcnow()
    s.flush()
    return limit


def clear_limits(s: Session, project: Project, source: str) -> None:
    s.execute(delete(Limit).where(Limit.project_pk == project.id, Limit.source == source))


# Keys ----------------------------------------------------------------------------------------------


def add_key(
    s: Session,
    project: Project,
    *,
    key_id: str,
    secret: str | None,
    kind: str,
    state: str,
    origin: str,
    now: datetime | None = None,
    **fields,
) -> Key:
    now = now or utcnow()
    key = Key(
        key_id=key_id,
        project_pk=project.id,
        kind=kind,
        state=state,
        origin=origin,
        masked="-",
        fingerprint="",
        created_at=now,
        **fields,
    )
    key._kw_sealer = _sealer(s)
    if secret:
        check_sealer_fits(s, key._kw_sealer)
        set_secret(key, secret)
    s.add(key)
    s.flush()
    return key


def set_secret(key: Key, secret: str) -> None:
    """Store `secret` on `key`, sealed with the primary master key when there is one."""
    session = object_session(key)
    sealer = _sealer(session) if session is not None else (getattr(key, "_kw_sealer", None) or Sealer())
    if session is not None:
        check_sealer_fits(session, sealer)
    key.sealed = sealer.seal(secret, secret_aad(key.key_id, key.project_pk))
    key.sealed_by = sealed_by(key.sealed)
    key._kw_sealer, key._kw_opened = sealer, (key.sealed, secret)
    key.masked = mask(secret)
    key.fingerprint = fingerprint(secret)


def _sealer(s: Session) -> Sealer:
    return s.info.get("sealer") or Sealer()


def check_sealer_fits(s: Session, sealer: Sealer) -> None:
    """Refuse to write a secret unless `sealer` holds every master key the database already uses.

    Otherwise a process holding the wrong master key (or none) would add secrets that the right
    one cannot open, or plain text beside sealed values.
    """
    used = set(s.scalars(select(Key.sealed_by).where(Key.sealed_by.is_not(None)).distinct()))
    if not used:
        return
    found = sealer.found()
    missing = sorted(used - {k.id for k in found.keys})
    if not found.keys:
        raise MasterKeyError(
            f"refusing to store a key string: the database holds secrets sealed with master key "
            f"{', '.join(missing)}, and no master key was found (looked in: {found.where()})"
        )
    if missing:
        raise MasterKeyError(
            f"refusing to store a key string: the database holds secrets sealed with master key "
            f"{', '.join(missing)}, which is not among those found "
            f"({', '.join(k.id + ' from ' + k.source for k in found.keys)})"
        )


def get_key(s: Session, key_id: str) -> Key:
    key = find_key(s, key_id)
    if key is None:
        raise NotFound(f"no key {key_id!r} (see `keyward key list`)")
    return key


def find_key(s: Session, key_id: str) -> Key | None:
    return s.scalar(select(Key).options(selectinload(Key.project)).where(Key.key_id == key_id))


def find_key_by_secret(s: Session, secret: str) -> Key | None:
    fp = fingerprint(secret)
    return s.scalar(select(Key).options(selectinload(Key.project)).where(Key.fingerprint == fp))


def keys_of(s: Session, project: Project, states: Sequence[str] | None = None) -> Sequence[Key]:
    q = select(Key).where(Key.project_pk == project.id).order_by(Key.created_at, Key.id)
    if states is not None:
        q = q.where(Key.state.in_(states))
    return s.scalars(q).all()


def list_keys(s: Session, project_id: str | None = None, *, include_retired: bool = True) -> Sequence[Key]:
    q = select(Key).join(Project).options(selectinload(Key.project)).order_by(Project.project_id, Key.created_at)
    if project_id is not None:
        q = q.where(Project.project_id == project_id)
    if not include_retired:
        q = q.where(Key.state.in_(LIVE_STATES))
    return s.scalars(q).all()


def active_keys_in_pool(s: Session, pool: Pool) -> Sequence[Key]:
    q = (
        select(Key)
        .join(Project)
        .options(selectinload(Key.project))
        .where(Project.pool_id == pool.id, Key.state == "active")
        .order_by(Project.project_id, Key.promoted_at.desc(), Key.id.desc())
    )
    return s.scalars(q).all()


# Journal and small values --------------------------------------------------------------------------


def journal(
    s: Session,
    kind: str,
    message: str,
    *,
    level: str = "info",
    project: str | None = None,
    pool: str | None = None,
    key_id: str | None = None,
    now: datetime | None = None,
) -> Event:
    """Append one event to the journal (in the caller's transaction, so it commits with the change)."""
    event = Event(at=now or utcnow(), kind=kind, level=level, project_id=project, pool=pool,
                  key_id=key_id, message=message)
    s.add(event)
    return event


def recent_events(s: Session, limit: int = 20, *, project: str | None = None,
                  levels: Sequence[str] | None = None) -> Sequence[Event]:
    q = select(Event).order_by(Event.id.desc()).limit(limit)
    if project is not None:
        q = q.where(Event.project_id == project)
    if levels is not None:
        q = q.where(Event.level.in_(levels))
    return s.scalars(q).all()


def rotation_outcomes(s: Session) -> dict[tuple[str, str], int]:
    """Count finished rotations by (outcome, reason), for metrics."""
    from sqlalchemy import func

    from keyward.storage.models import Rotation

    rows = s.execute(
        select(Rotation.outcome, Rotation.reason, func.count())
        .where(Rotation.outcome.is_not(None))
        .group_by(Rotation.outcome, Rotation.reason)
    ).all()
    return {(outcome, reason): count for outcome, reason, count in rows}


def error_counts(s: Session, since: datetime) -> dict[str, int]:
    """Count error-level journal events since `since`, by kind, for metrics."""
    from sqlalchemy import func

    rows = s.execute(
        select(Event.kind, func.count()).where(Event.level == "error", Event.at >= since).group_by(Event.kind)
    ).all()
    return {kind: count for kind, count in rows}


def set_meta(s: Session, name: str, value: str, now: datetime | None = None) -> None:
    """Insert or update a meta row; safe when several daemons start on an empty database at once
    (the loser of the insert race updates the winner's row instead of failing)."""
    from sqlalchemy.exc import IntegrityError

    row = s.get(Meta, name)
    if row is None:
        try:
            with s.begin_nested():
                s.add(Meta(name=name, value=value, updated_at=now or utcnow()))
            return
        except IntegrityError:
            row = s.get(Meta, name, populate_existing=True)
    row.value, row.updated_at = value, now or utcnow()


def get_meta(s: Session, name: str) -> Meta | None:
    return s.get(Meta, name)


def events_after(s: Session, after_id: int, kinds: Sequence[str]) -> Sequence[Event]:
    """Journal events newer than event `after_id` whose kind is one of `kinds`, oldest first."""
    return s.scalars(select(Event).where(Event.id > after_id, Event.kind.in_(list(kinds)))
                     .order_by(Event.id)).all()


def active_key_offers(s: Session, pool: Pool) -> Sequence:
    """The pool's active keys as plain rows (project_id, key_id, has_secret, state, kind), per project
    auth keys first, then newest first: what selection needs, without building an ORM object per key
    (most of the cost at thousands of projects). Auth keys lead because selection offers a project's
    first key and never publishes a standard one."""
    return s.execute(
        select(Project.project_id, Key.key_id, Key.sealed.is_not(None), Key.state, Key.kind)
        .join(Project)
        .where(Project.pool_id == pool.id, Key.state == "active")
        .order_by(Project.project_id, case((Key.kind == "standard", 1), else_=0),
                  Key.promoted_at.desc(), Key.id.desc())
    ).all()
