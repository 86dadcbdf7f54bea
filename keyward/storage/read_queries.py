"""The queries of commands that only read: `pool|project|key list` and `keyward status`.

They run on a Core connection (`Store.read_rows()`) against `keyward.storage.tables` and return
plain named tuples, never ORM objects: importing the ORM and building an object per row would cost
such a command more than everything else it does, and reading a field of a named tuple costs a tenth
of reading it from SQLAlchemy's Row, which counts at ten thousand projects with twenty fields each.
The figures are the same the ORM queries in `store` and `usage_queries` give; tests compare the two.
"""

from __future__ import annotations

from collections import namedtuple
from datetime import datetime
from typing import TYPE_CHECKING, Any, Sequence

from sqlalchemy import and_, func, select

from keyward.storage.tables import (ALL_MODELS, LIVE_STATES, events, exhaustion, keys, leases, limits, meta,
                                    pools, projects)
from keyward.storage.tables import usage_summaries as summaries

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Result

_TUPLES: dict[tuple[str, ...], Any] = {}


def _tuples(result: "Result") -> list[Any]:
    """The result's rows as named tuples whose fields are the selected columns' names."""
    fields = tuple(result.keys())
    cls = _TUPLES.get(fields)
    if cls is None:
        cls = _TUPLES[fields] = namedtuple("Record", fields)
    make = cls._make
    return [make(row) for row in result.all()]


def meta_value(conn: "Connection", name: str) -> tuple[str, datetime] | None:
    """Return (value, updated_at) of the meta row `name`, or None."""
    row = conn.execute(select(meta.c.value, meta.c.updated_at).where(meta.c.name == name)).first()
    return None if row is None else (row[0], row[1])


def meta_rows(conn: "Connection", prefix: str) -> list[Any]:
    """Every meta row whose name starts with `prefix`: (name, value, updated_at)."""
    return _tuples(conn.execute(select(meta.c.name, meta.c.value, meta.c.updated_at)
                                .where(meta.c.name.like(prefix + "%"))))


def lease(conn: "Connection", name: str) -> Any:
    """The lease row `name` (holder, epoch, expires_at), or None."""
    rows = _tuples(conn.execute(select(leases.c.holder, leases.c.epoch, leases.c.expires_at)
                                .where(leases.c.name == name)))
    return rows[0] if rows else None


# Inventory ----------------------------------------------------------------------------------------


def pool_rows(conn: "Connection") -> list[Any]:
    """Every pool with all its columns, by name."""
    return _tuples(conn.execute(select(pools).order_by(pools.c.name)))


def project_counts(conn: "Connection") -> dict[int, int]:
    """Return {pool pk: number of projects}, counted by the database."""
    return {pk: n for pk, n in conn.execute(
        select(projects.c.pool_id, func.count()).group_by(projects.c.pool_id))}


def project_exists(conn: "Connection", project_id: str) -> bool:
    return conn.execute(select(projects.c.id).where(projects.c.project_id == project_id)).first() is not None


def project_listing(conn: "Connection", pool: str | None = None) -> list[Any]:
    """Projects by project id (of one pool, when named): project_id, number, pool, managed,
    service_account, allowed_ips, origin."""
    q = (select(projects.c.project_id, projects.c.number, pools.c.name.label("pool"), projects.c.managed,
                projects.c.service_account, projects.c.allowed_ips, projects.c.origin)
         .join(pools, projects.c.pool_id == pools.c.id)
         .order_by(projects.c.project_id))
    if pool is not None:
        q = q.where(pools.c.name == pool)
    return _tuples(conn.execute(q))


def key_listing(conn: "Connection", project_id: str | None = None, *,
                include_retired: bool = True) -> list[Any]:
    """Keys by project id and age, without their secrets: key_id, project_id, kind, state, origin,
    masked, created_at, promoted_at, rotate_after, grace_until, invalid_reason."""
    q = (select(keys.c.key_id, projects.c.project_id, keys.c.kind, keys.c.state, keys.c.origin, keys.c.masked,
                keys.c.created_at, keys.c.promoted_at, keys.c.rotate_after, keys.c.grace_until,
                keys.c.invalid_reason)
         .join(projects, keys.c.project_pk == projects.c.id)
         .order_by(projects.c.project_id, keys.c.created_at))
    if project_id is not None:
        q = q.where(projects.c.project_id == project_id)
    if not include_retired:
        q = q.where(keys.c.state.in_(LIVE_STATES))
    return _tuples(conn.execute(q))


# Status -------------------------------------------------------------------------------------------


def status_projects(conn: "Connection", now: datetime) -> list[Any]:
    """Every project by project id, with what status shows of it, in one query.

    Each row: project_id, managed, rotation_failures, rotation_backoff_until, pool_name, pool_model;
    its usage summary for the pool's model (minute, requests, tokens, prev_minute, prev_requests,
    prev_tokens, day, day_requests: None without one); its limits for the pool's model (rpm, tpm,
    rpd, limit_source) and for every model (any_rpm, any_tpm, any_rpd, any_source); and exhaustion
    for the pool's model that lasts past `now` (exhausted_until, exhausted_scope). Every join is on
    a unique key, so there is one row per project.
    """
    own, every = limits.alias("own_limit"), limits.alias("any_limit")
    ex = exhaustion
    return _tuples(conn.execute(
        select(projects.c.project_id, projects.c.managed, projects.c.rotation_failures,
               projects.c.rotation_backoff_until, pools.c.name.label("pool_name"),
               pools.c.model.label("pool_model"),
               summaries.c.minute, summaries.c.requests, summaries.c.tokens, summaries.c.prev_minute,
               summaries.c.prev_requests, summaries.c.prev_tokens, summaries.c.day, summaries.c.day_requests,
               own.c.rpm, own.c.tpm, own.c.rpd, own.c.source.label("limit_source"),
               every.c.rpm.label("any_rpm"), every.c.tpm.label("any_tpm"), every.c.rpd.label("any_rpd"),
               every.c.source.label("any_source"),
               ex.c.until.label("exhausted_until"), ex.c.scope.label("exhausted_scope"))
        .join(pools, projects.c.pool_id == pools.c.id)
        .outerjoin(summaries, and_(summaries.c.project_pk == projects.c.id, summaries.c.model == pools.c.model))
        .outerjoin(own, and_(own.c.project_pk == projects.c.id, own.c.model == pools.c.model))
        .outerjoin(every, and_(every.c.project_pk == projects.c.id, every.c.model == ALL_MODELS))
        .outerjoin(ex, and_(ex.c.project_pk == projects.c.id, ex.c.model == pools.c.model, ex.c.until > now))
        .order_by(projects.c.project_id)
    ))


def status_keys(conn: "Connection") -> list[Any]:
    """Every key as a plain row without its secret (only whether it has one), for status."""
    return _tuples(conn.execute(
        select(keys.c.key_id, keys.c.kind, keys.c.state, keys.c.origin, keys.c.masked, keys.c.created_at,
               keys.c.rotate_after, keys.c.grace_until, keys.c.invalid_reason,
               keys.c.secret.is_not(None).label("has_secret"), keys.c.sealed_by,
               projects.c.project_id, projects.c.managed, projects.c.pool_id)
        .join(projects, keys.c.project_pk == projects.c.id)
        .order_by(projects.c.project_id, keys.c.created_at, keys.c.id)
    ))


def recent_events(conn: "Connection", limit: int, *, levels: Sequence[str] | None = None) -> list[Any]:
    """The newest `limit` journal events (of those levels), newest first."""
    q = select(events).order_by(events.c.id.desc()).limit(limit)
    if levels is not None:
        q = q.where(events.c.level.in_(list(levels)))
    return _tuples(conn.execute(q))


def events_after(conn: "Connection", after_id: int, kinds: Sequence[str]) -> list[Any]:
    """Journal events newer than event `after_id` whose kind is one of `kinds`, oldest first."""
    return _tuples(conn.execute(select(events).where(events.c.id > after_id, events.c.kind.in_(list(kinds)))
                                .order_by(events.c.id)))
