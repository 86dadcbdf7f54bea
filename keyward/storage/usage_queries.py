"""The queries behind usage accounting: minute and day counts per source, exhaustion, loads, pruning.

Counts are kept per source ("local" reports, "monitoring" points) and merged by taking the larger
of the two per project, model and minute. A third day row, source "effective", holds the running sum
of those per-minute maxima, maintained on every write, so the requests of a day are one row read.

A summary row per project and model (`usage_summaries`: the two latest minutes' effective counts
and the latest day's effective requests) is upserted in the same transaction as each minute write,
so a process without the daemon's kept loads reads one row per project, not the minute buckets.

Concurrency: local increments are atomic upserts (`… ON CONFLICT DO UPDATE SET n = n + :d
RETURNING n`), so many writers never lose an update. On PostgreSQL a Monitoring write first locks
the minute's local row (a +0 upsert), so a local increment and a Monitoring replacement of the
same minute serialise and the effective day sum stays exact. SQLite serialises every writer anyway
(BEGIN IMMEDIATE).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Iterable, Sequence

from sqlalchemy import and_, bindparam, case, delete, func, or_, select
from sqlalchemy.orm import Session

from keyward.storage.models import (
    Exhaustion, Key, Limit, Pool, Project, UsageDay, UsageMinute, UsageSummary,
)
from keyward.storage.tables import ALL_MODELS, EFFECTIVE, LOCAL, MONITORING  # noqa: F401  (used by callers)

Counts = tuple[int, int, int]  # requests, input tokens, output tokens
ZERO: Counts = (0, 0, 0)


def _insert(s: Session, table):
    """INSERT with ON CONFLICT support for the session's dialect (SQLite ≥ 3.35 or PostgreSQL)."""
    if _is_pg(s):
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def _is_pg(s: Session) -> bool:
    return s.get_bind().dialect.name == "postgresql"


# Statements are built once per dialect with bound parameters: reports arrive by the thousand and
# building a statement costs more than running it.
_STATEMENTS: dict[tuple[str, str], Any] = {}
_COUNT_COLS = ("requests", "input_tokens", "output_tokens")


def _statement(s: Session, name: str):
    dialect = s.get_bind().dialect.name
    stmt = _STATEMENTS.get((dialect, name))
    if stmt is None:
        stmt = _STATEMENTS[(dialect, name)] = _BUILDERS[name](s)
    return stmt


def _prepared(s: Session, name: str):
    """The statement `name` compiled for the session's dialect, run on the driver's cursor (see
    keyward.storage.prepared): for the writes every report makes."""
    dialect = s.get_bind().dialect
    key = (f"{dialect.name}+{dialect.driver}", name)  # the SQL text differs between drivers
    prepared = _STATEMENTS.get(key)
    if prepared is None:
        from keyward.storage.prepared import Prepared

        prepared = _STATEMENTS[key] = Prepared(_statement(s, name), dialect)
    return prepared


def _run(s: Session, name: str, params: dict):
    """Execute a prepared statement on the session's connection (no ORM layer in between)."""
    return s.connection().execute(_statement(s, name), params)


def _params(prefix: dict, counts: Counts) -> dict:
    return {**prefix, "requests": counts[0], "input_tokens": counts[1], "output_tokens": counts[2]}


def _build_add_minute(s: Session):
    t = UsageMinute.__table__
    ins = _insert(s, t)
    return ins.on_conflict_do_update(
        index_elements=["project_pk", "model", "minute", "source"],
        set_={c: t.c[c] + ins.excluded[c] for c in _COUNT_COLS},
    ).returning(t.c.requests, t.c.input_tokens, t.c.output_tokens)


def _build_set_minute(s: Session):
    t = UsageMinute.__table__
    ins = _insert(s, t)
    return ins.on_conflict_do_update(
        index_elements=["project_pk", "model", "minute", "source"],
        set_={c: ins.excluded[c] for c in _COUNT_COLS})


def _build_add_day(s: Session):
    t = UsageDay.__table__
    ins = _insert(s, t)
    return ins.on_conflict_do_update(
        index_elements=["project_pk", "model", "day", "source"],
        set_={c: t.c[c] + ins.excluded[c] for c in _COUNT_COLS})


def _build_get_minute(s: Session):
    t = UsageMinute.__table__
    return select(t.c.requests, t.c.input_tokens, t.c.output_tokens).where(
        t.c.project_pk == bindparam("project_pk"), t.c.model == bindparam("model"),
        t.c.minute == bindparam("minute", type_=t.c.minute.type),
        t.c.source == bindparam("source"))


def _build_summarise(s: Session):
    """Upsert a summary row with one minute's effective counts and the day's effective delta.

    The row keeps the two latest minutes: a newer minute pushes the latest one into `prev_*`, the
    same minute is replaced, an older one replaces `prev_*` only when it is newer than it. A newer
    Pacific day starts the day count over; a late write for an older day leaves it alone. Every
    right-hand side reads the row as it was before this statement.
    """
    t = UsageSummary.__table__
    ins = _insert(s, t)
    m, c = ins.excluded, t.c
    newer = or_(c.minute.is_(None), m.minute > c.minute)
    same = m.minute == c.minute
    second = or_(c.prev_minute.is_(None), m.minute >= c.prev_minute)
    new_day = m.day > c.day
    return ins.on_conflict_do_update(index_elements=["project_pk", "model"], set_={
        "minute": case((newer, m.minute), else_=c.minute),
        "requests": case((newer, m.requests), (same, m.requests), else_=c.requests),
        "tokens": case((newer, m.tokens), (same, m.tokens), else_=c.tokens),
        "prev_minute": case((newer, c.minute), (same, c.prev_minute), (second, m.minute),
                            else_=c.prev_minute),
        "prev_requests": case((newer, c.requests), (same, c.prev_requests), (second, m.requests),
                              else_=c.prev_requests),
        "prev_tokens": case((newer, c.tokens), (same, c.prev_tokens), (second, m.tokens),
                            else_=c.prev_tokens),
        "day": case((new_day, m.day), else_=c.day),
        "day_requests": case((new_day, m.day_requests), (m.day == c.day, c.day_requests + m.day_requests),
                             else_=c.day_requests),
    })


_BUILDERS = {"add_minute": _build_add_minute, "set_minute": _build_set_minute,
             "add_day": _build_add_day, "get_minute": _build_get_minute, "summarise": _build_summarise}


def _add_minute(s: Session, key: dict, source: str, delta: Counts) -> Counts:
    """Add `delta` to one minute row (creating it); return the row's counts after the addition."""
    row = _run(s, "add_minute", _params({**key, "source": source}, delta)).one()
    return (row[0], row[1], row[2])


def _add_day(s: Session, project_pk: int, model: str, day: date, source: str, delta: Counts) -> None:
    if delta == ZERO:
        return
    _run(s, "add_day", _params(
        {"project_pk": project_pk, "model": model, "day": day, "source": source}, delta))


def _minute_counts(s: Session, key: dict, source: str) -> Counts:
    row = _run(s, "get_minute", {**key, "source": source}).first()
    return ZERO if row is None else (row[0], row[1], row[2])


def _max(a: Counts, b: Counts) -> Counts:
    return (max(a[0], b[0]), max(a[1], b[1]), max(a[2], b[2]))


def _sub(a: Counts, b: Counts) -> Counts:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def _summarise(s: Session, key: dict, day: date, effective: Counts, day_delta: Counts) -> None:
    _run(s, "summarise", {**key, "requests": effective[0], "tokens": effective[1], "prev_minute": None,
                          "prev_requests": 0, "prev_tokens": 0, "day": day, "day_requests": day_delta[0]})


def add_local(s: Session, project_pk: int, model: str, minute: datetime, day: date,
              delta: Counts) -> None:
    """Add locally reported usage to a minute, its Pacific day and the effective day sum."""
    add_local_many(s, [(project_pk, model, minute, day, delta)])


Cell = tuple[int, str, datetime, date, Counts]  # project pk, model, minute, its Pacific day, delta


def add_local_many(s: Session, cells: Sequence[Cell]) -> None:
    """`add_local` for many cells (distinct project, model and minute): per cell, the minute row's
    upsert and a read of its Monitoring count; then the day rows (summed per row) and the summary
    rows, each written by one executemany, on prepared statements (this is the ingest socket's path).

    Rows are written in the order of `cells` (give them sorted: PostgreSQL writers then take their
    row locks in one order and never deadlock), minute rows first, as a Monitoring write locks the
    minute's local row first too.
    """
    from keyward.storage.prepared import driver_cursor

    if len({c[:3] for c in cells}) != len(cells):
        raise ValueError("add_local_many: cells must be distinct (project, model, minute)")
    add_minute, get_minute = _prepared(s, "add_minute"), _prepared(s, "get_minute")
    add_day, summarise = _prepared(s, "add_day"), _prepared(s, "summarise")
    days: dict[tuple[int, str, date, str], Counts] = {}
    rounds: list[list[dict]] = []  # a summary row is written at most once per executemany
    seen: dict[tuple[int, str], int] = {}
    with driver_cursor(s) as cursor:
        for pk, model, minute, day, delta in cells:
            key = {"project_pk": pk, "model": model, "minute": minute}
            new = add_minute.one(cursor, _params({**key, "source": LOCAL}, delta))
            mon = get_minute.one(cursor, {**key, "source": MONITORING}) or ZERO
            effective = _max(new, mon)
            day_delta = _sub(effective, _max(_sub(new, delta), mon))
            for source, add in ((LOCAL, delta), (EFFECTIVE, day_delta)):
                if add != ZERO:
                    old = days.get((pk, model, day, source), ZERO)
                    days[(pk, model, day, source)] = (old[0] + add[0], old[1] + add[1], old[2] + add[2])
            n = seen[(pk, model)] = seen.get((pk, model), -1) + 1
            if n == len(rounds):
                rounds.append([])
            rounds[n].append({**key, "requests": effective[0], "tokens": effective[1],
                              "prev_minute": None, "prev_requests": 0, "prev_tokens": 0, "day": day,
                              "day_requests": day_delta[0]})
        add_day.many(cursor, [_params({"project_pk": pk, "model": model, "day": day, "source": source}, c)
                              for (pk, model, day, source), c in days.items()])
        for summaries in rounds:
            summarise.many(cursor, summaries)


def set_monitoring(s: Session, project_pk: int, model: str, minute: datetime, day: date,
                   value: Counts) -> None:
    """Replace a minute's Monitoring counts (absolute) and carry the change into the day rows."""
    key = {"project_pk": project_pk, "model": model, "minute": minute}
    # On PostgreSQL, lock the local row first (see the module docstring); SQLite is serialised.
    local = _add_minute(s, key, LOCAL, ZERO) if _is_pg(s) else _minute_counts(s, key, LOCAL)
    old = _minute_counts(s, key, MONITORING)
    if old == value:
        return
    _run(s, "set_minute", _params({**key, "source": MONITORING}, value))
    _add_day(s, project_pk, model, day, MONITORING, _sub(value, old))
    effective = _max(local, value)
    day_delta = _sub(effective, _max(local, old))
    _add_day(s, project_pk, model, day, EFFECTIVE, day_delta)
    _summarise(s, key, day, effective, day_delta)


@dataclass(frozen=True)
class KeyTarget:
    """A key with its project and pool, as attribution needs them (one query, no ORM objects)."""

    key_pk: int
    key_id: str
    state: str
    project_pk: int
    project_id: str
    managed: bool
    pool_name: str
    pool_model: str


def _build_target(by: str):
    def build(s: Session):
        q = (select(Key.id, Key.key_id, Key.state, Project.id, Project.project_id, Project.managed,
                    Pool.name, Pool.model)
             .join(Project, Key.project_pk == Project.id).join(Pool, Project.pool_id == Pool.id))
        column = Key.fingerprint if by == "fingerprint" else Key.key_id
        return q.where(column == bindparam("value")).order_by(Key.id).limit(1)
    return build


def _build_pool(s: Session):
    return select(Pool.name, Pool.current_key_id, Pool.model).where(Pool.name == bindparam("name"))


_BUILDERS.update(target_by_fingerprint=_build_target("fingerprint"),
                 target_by_key_id=_build_target("key_id"), pool=_build_pool)


def key_target(s: Session, *, fingerprint: str | None = None,
               key_id: str | None = None) -> KeyTarget | None:
    """Return the key found by fingerprint or key id with its project and pool, or None."""
    name, value = (("target_by_fingerprint", fingerprint) if fingerprint is not None
                   else ("target_by_key_id", key_id))
    row = _run(s, name, {"value": value}).first()
    return None if row is None else KeyTarget(*row)


def pool_current(s: Session, name: str) -> tuple[str, str | None, str] | None:
    """Return (name, current key id, model) of a pool, or None when there is no such pool."""
    row = _run(s, "pool", {"name": name}).first()
    return None if row is None else (row[0], row[1], row[2])


def set_exhaustion(s: Session, project_pk: int, model: str, *, until: datetime, scope: str,
                   quota_ids: str, now: datetime) -> bool:
    """Record that a project+model is exhausted until `until`; an earlier end never shortens it.

    Return whether the row changed (a new or a longer exhaustion).
    """
    t = Exhaustion.__table__
    stmt = _insert(s, t).values(project_pk=project_pk, model=model, until=until, scope=scope,
                                quota_ids=quota_ids, recorded_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=["project_pk", "model"],
        set_={"until": until, "scope": scope, "quota_ids": quota_ids, "recorded_at": now},
        where=t.c.until < stmt.excluded.until,
    )
    return (s.execute(stmt).rowcount or 0) > 0


# Reading -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolRows:
    """Everything `pool_loads` needs for one pool, read in a handful of bulk queries."""

    projects: list[tuple[int, str]]  # (pk, project id), ordered by project id
    limits: dict[tuple[int, str], tuple[int | None, int | None, int | None, str]]
    minutes: list[tuple[int, datetime, str, int, int]]  # pk, minute, source, requests, tokens
    days: dict[int, int]  # pk → effective requests today
    exhaustion: dict[int, tuple[datetime, str]]  # pk → (until, scope)


def pool_rows(s: Session, pool_id: int, model: str, since: datetime, day: date,
              now: datetime, project_pks: Iterable[int] | None = None, *,
              summaries: bool = False) -> PoolRows:
    """Read one pool's projects, limits, recent minutes, today's totals and live exhaustion (only of
    the projects `project_pks`, when given).

    With `summaries`, minutes and today's totals come from the summary rows (one per project, the
    minutes already merged, source "effective") instead of the minute and day buckets.
    """
    if summaries and project_pks is not None:
        return few_project_rows(s, pool_id, model, since, day, now, project_pks)
    members = select(Project.id).where(Project.pool_id == pool_id)
    listing = select(Project.id, Project.project_id).where(Project.pool_id == pool_id)
    if project_pks is not None:
        wanted = sorted(set(project_pks))
        members, listing = members.where(Project.id.in_(wanted)), listing.where(Project.id.in_(wanted))
    in_pool = members.scalar_subquery()
    projects = [(r[0], r[1]) for r in s.execute(listing.order_by(Project.project_id))]
    lt = Limit.__table__
    limits = {(r[0], r[1]): (r[2], r[3], r[4], r[5]) for r in s.execute(
        select(lt.c.project_pk, lt.c.model, lt.c.rpm, lt.c.tpm, lt.c.rpd, lt.c.source)
        .where(lt.c.project_pk.in_(in_pool), lt.c.model.in_((model, ALL_MODELS))))}
    if summaries:
        minutes, days = _summary_usage(s, in_pool, model, since, day)
        return PoolRows(projects, limits, minutes, days, _exhaustion(s, in_pool, model, now))
    mt = UsageMinute.__table__
    minutes = [(r[0], r[1], r[2], r[3], r[4]) for r in s.execute(
        select(mt.c.project_pk, mt.c.minute, mt.c.source, mt.c.requests, mt.c.input_tokens)
        .where(mt.c.minute >= since, mt.c.model == model, mt.c.project_pk.in_(in_pool)))]
    dt = UsageDay.__table__
    days = {r[0]: r[1] for r in s.execute(
        select(dt.c.project_pk, dt.c.requests).where(
            dt.c.project_pk.in_(in_pool), dt.c.model == model, dt.c.day == day,
            dt.c.source == EFFECTIVE))}
    return PoolRows(projects, limits, minutes, days, _exhaustion(s, in_pool, model, now))


def _exhaustion(s: Session, in_pool, model: str, now: datetime) -> dict[int, tuple[datetime, str]]:
    et = Exhaustion.__table__
    return {r[0]: (r[1], r[2]) for r in s.execute(
        select(et.c.project_pk, et.c.until, et.c.scope).where(
            et.c.project_pk.in_(in_pool), et.c.model == model, et.c.until > now))}


def _summary_usage(s: Session, in_pool, model: str, since: datetime, day: date):
    st = UsageSummary.__table__
    minutes: list[tuple[int, datetime, str, int, int]] = []
    days: dict[int, int] = {}
    for pk, m, r, t, pm, pr, pt, d, dr in s.execute(
            select(st.c.project_pk, st.c.minute, st.c.requests, st.c.tokens, st.c.prev_minute,
                   st.c.prev_requests, st.c.prev_tokens, st.c.day, st.c.day_requests)
            .where(st.c.project_pk.in_(in_pool), st.c.model == model)):
        if m is not None and m >= since:
            minutes.append((pk, m, EFFECTIVE, r, t))
        if pm is not None and pm >= since:
            minutes.append((pk, pm, EFFECTIVE, pr, pt))
        if d == day:
            days[pk] = dr
    return minutes, days


def day_totals(s: Session, project_pk: int, model: str, day: date) -> dict[str, Counts]:
    """Return {source: counts} of one project, model and Pacific day (for tests and reports)."""
    dt = UsageDay.__table__
    return {r[0]: (r[1], r[2], r[3]) for r in s.execute(
        select(dt.c.source, dt.c.requests, dt.c.input_tokens, dt.c.output_tokens).where(
            dt.c.project_pk == project_pk, dt.c.model == model, dt.c.day == day))}


def minute_totals(s: Session, project_pk: int, model: str) -> dict[tuple[datetime, str], Counts]:
    """Return {(minute, source): counts} for one project and model."""
    mt = UsageMinute.__table__
    return {(r[0], r[1]): (r[2], r[3], r[4]) for r in s.execute(
        select(mt.c.minute, mt.c.source, mt.c.requests, mt.c.input_tokens, mt.c.output_tokens)
        .where(mt.c.project_pk == project_pk, mt.c.model == model))}


def exhaustion_of(s: Session, project_pk: int, model: str) -> Exhaustion | None:
    return s.get(Exhaustion, (project_pk, model))


def keys_by_uid(s: Session, uids: Iterable[str]) -> dict[str, Key]:
    """Return {google uid: Key} for the uids keyward knows."""
    wanted = sorted(set(uids))
    if not wanted:
        return {}
    return {k.google_uid: k for k in s.scalars(select(Key).where(Key.google_uid.in_(wanted)))
            if k.google_uid}


def projects_with_pools(s: Session) -> Sequence[tuple[int, str, str, str]]:
    """Return (pk, project id, pool name, pool model) for every project."""
    return s.execute(
        select(Project.id, Project.project_id, Pool.name, Pool.model).join(Pool)
        .order_by(Project.project_id)).all()


def has_limit(s: Session, project_pk: int, model: str, source: str) -> bool:
    return s.scalar(select(func.count()).select_from(Limit).where(
        and_(Limit.project_pk == project_pk, Limit.model == model, Limit.source == source))) > 0


def prune(s: Session, *, minutes_before: datetime, days_before: date, now: datetime) -> dict[str, int]:
    """Delete minute rows older than `minutes_before`, day rows before `days_before` and ended
    exhaustion; return how many rows of each went."""
    m = s.execute(delete(UsageMinute).where(UsageMinute.minute < minutes_before)).rowcount
    d = s.execute(delete(UsageDay).where(UsageDay.day < days_before)).rowcount
    e = s.execute(delete(Exhaustion).where(Exhaustion.until <= now)).rowcount
    return {"minutes": m or 0, "days": d or 0, "exhaustion": e or 0}


def clear_exhaustion(s: Session, project_pks: Sequence[int] | None, now: datetime) -> list[tuple[str, str, str]]:
    """Delete live exhaustion rows (of `project_pks`, or all); return (project id, model, pool) of each."""
    query = (select(Exhaustion.project_pk, Exhaustion.model, Project.project_id, Pool.name)
             .join(Project, Project.id == Exhaustion.project_pk)
             .join(Pool, Pool.id == Project.pool_id, isouter=True)
             .where(Exhaustion.until > now))
    if project_pks is not None:
        query = query.where(Exhaustion.project_pk.in_(list(project_pks)))
    rows = s.execute(query).all()
    for pk, model, _pid, _pool in rows:
        s.execute(delete(Exhaustion).where(Exhaustion.project_pk == pk, Exhaustion.model == model))
    return [(pid, model, pool or "") for _pk, model, pid, pool in rows]


def project_numbers(s: Session) -> dict[str, str | None]:
    """Return project id → project number (None when the config gives none), for every project."""
    return {pid: number for pid, number in s.execute(select(Project.project_id, Project.number))}


def _build_few_projects(s: Session):
    p, st, et = Project.__table__, UsageSummary.__table__, Exhaustion.__table__
    lm, la = Limit.__table__.alias("limit_model"), Limit.__table__.alias("limit_all")
    return (
        select(p.c.id, p.c.project_id, lm.c.rpm, lm.c.tpm, lm.c.rpd, lm.c.source,
               la.c.rpm, la.c.tpm, la.c.rpd, la.c.source,
               st.c.minute, st.c.requests, st.c.tokens, st.c.prev_minute, st.c.prev_requests,
               st.c.prev_tokens, st.c.day, st.c.day_requests, et.c.until, et.c.scope)
        .select_from(p)
        .outerjoin(lm, and_(lm.c.project_pk == p.c.id, lm.c.model == bindparam("model")))
        .outerjoin(la, and_(la.c.project_pk == p.c.id, la.c.model == ALL_MODELS))
        .outerjoin(st, and_(st.c.project_pk == p.c.id, st.c.model == bindparam("model")))
        .outerjoin(et, and_(et.c.project_pk == p.c.id, et.c.model == bindparam("model"),
                            et.c.until > bindparam("now")))
        .where(p.c.pool_id == bindparam("pool_id"), p.c.id.in_(bindparam("pks", expanding=True)))
        .order_by(p.c.project_id)
    )


_BUILDERS["few_projects"] = _build_few_projects


def few_project_rows(s: Session, pool_id: int, model: str, since: datetime, day: date, now: datetime,
                     project_pks: Iterable[int]) -> PoolRows:
    """`pool_rows(..., project_pks, summaries=True)` in one prepared query: the daemon's kept loads
    recompute the few projects a report touched before each choice, and five statements built
    for one project cost more than the choice itself."""
    projects: list[tuple[int, str]] = []
    limits: dict[tuple[int, str], tuple[int | None, int | None, int | None, str]] = {}
    minutes: list[tuple[int, datetime, str, int, int]] = []
    days: dict[int, int] = {}
    exhaustion: dict[int, tuple[datetime, str]] = {}
    wanted = sorted(set(project_pks))
    if not wanted:
        return PoolRows(projects, limits, minutes, days, exhaustion)
    for (pk, project_id, m_rpm, m_tpm, m_rpd, m_source, a_rpm, a_tpm, a_rpd, a_source,
         m, r, t, pm, pr, pt, d, dr, until, scope) in _run(
            s, "few_projects", {"model": model, "now": now, "pool_id": pool_id, "pks": wanted}):
        projects.append((pk, project_id))
        if m_source is not None:
            limits[(pk, model)] = (m_rpm, m_tpm, m_rpd, m_source)
        if a_source is not None:
            limits[(pk, ALL_MODELS)] = (a_rpm, a_tpm, a_rpd, a_source)
        if m is not None and m >= since:
            minutes.append((pk, m, EFFECTIVE, r, t))
        if pm is not None and pm >= since:
            minutes.append((pk, pm, EFFECTIVE, pr, pt))
        if d is not None and d == day:
            days[pk] = dr
        if until is not None:
            exhaustion[pk] = (until, scope)
    return PoolRows(projects, limits, minutes, days, exhaustion)
