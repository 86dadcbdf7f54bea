"""Usage of a whole group commit is written in a few statements (`add_local_many`); the rows it
leaves must be exactly those of writing each project, model and minute on its own (`add_local`),
whatever Monitoring already holds, across minutes and a Pacific midnight, on both databases."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from usage_world import MODEL, make_world

from keyward.errors import StorageError
from keyward.quota.windows import pacific_date
from keyward.storage import store as q
from keyward.storage import usage_queries as uq
from keyward.storage.models import UsageDay, UsageMinute, UsageSummary

UTC = timezone.utc
MIDNIGHT = datetime(2026, 3, 9, 7, 0, tzinfo=UTC)  # a Pacific midnight (PDT)
PROJECTS = ("alpha-one", "beta-two")
MODELS = (MODEL, "gemini-2.5-pro")

counts = st.tuples(st.integers(0, 9), st.integers(0, 500), st.integers(0, 50))
cell = st.tuples(st.sampled_from(PROJECTS), st.sampled_from(MODELS), st.integers(-2, 2))
cells = st.dictionaries(cell, counts.filter(any), min_size=1, max_size=8)
monitored = st.dictionaries(cell, counts, max_size=4)


@pytest.fixture(params=["sqlite", "postgres"])
def world(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("batched")
    url = f"sqlite:///{tmp / 'k.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    w = make_world(tmp, url, {p: None for p in PROJECTS}, now=MIDNIGHT)
    yield w
    w.ctx.close()


def _expected(minutes):
    """Day and summary rows as they must follow from the minute rows: per source and day, the sum;
    "effective", the sum of each minute's larger count; a summary, the latest two minutes.

    An all-zero row holds no usage (on PostgreSQL a Monitoring write creates the minute's local row
    at zero to lock it first), so it is no minute of a summary."""
    minutes = {k: c for k, c in minutes.items() if any(c)}
    days, effective = {}, {}
    for (pk, model, minute, source), c in minutes.items():
        key = (pk, model, pacific_date(minute), source)
        days[key] = tuple(a + b for a, b in zip(days.get(key, (0, 0, 0)), c))
        other = minutes.get((pk, model, minute, "monitoring" if source == "local" else "local"), (0, 0, 0))
        effective[(pk, model, minute)] = tuple(max(a, b) for a, b in zip(c, other))
    for (pk, model, minute), c in effective.items():
        key = (pk, model, pacific_date(minute), "effective")
        days[key] = tuple(a + b for a, b in zip(days.get(key, (0, 0, 0)), c))
    summaries = {}
    for pk, model in {(pk, model) for pk, model, _m in effective}:
        mine = sorted(m for p, mo, m in effective if (p, mo) == (pk, model))
        last, prev = mine[-1], (mine[-2] if len(mine) > 1 else None)
        day = pacific_date(last)
        summaries[(pk, model)] = (last, effective[(pk, model, last)][:2], prev,
                                  effective[(pk, model, prev)][:2] if prev else (0, 0),
                                  day, days.get((pk, model, day, "effective"), (0,))[0])
    return {k: v for k, v in days.items() if any(v)}, summaries


@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=monitored, batch=cells)
@example(before={("alpha-one", MODEL, 0): (0, 0, 0)},  # PostgreSQL's zero lock row
         batch={("alpha-one", MODEL, 1): (0, 0, 1)})
def test_add_local_many_when_cells_cross_minutes_and_midnight_keeps_days_and_summaries_exact(
        world, before, batch):
    with world.ctx.store.read() as s:
        pks = {p: q.get_project(s, p).id for p in PROJECTS}
    at = {offset: MIDNIGHT + timedelta(minutes=offset) for offset in range(-2, 3)}
    with world.ctx.store.write() as s:
        for table in (UsageMinute, UsageDay, UsageSummary):
            s.execute(delete(table))
        for (project, model, offset), value in sorted(before.items()):
            uq.set_monitoring(s, pks[project], model, at[offset], pacific_date(at[offset]), value)
        for project, model, offset in sorted(batch):  # the minutes hold some local usage already
            uq.add_local(s, pks[project], model, at[offset], pacific_date(at[offset]), (1, 1, 0))
    todo = sorted((pks[p], m, at[o], pacific_date(at[o]), d) for (p, m, o), d in batch.items())
    with world.ctx.store.write() as s:
        uq.add_local_many(s, todo)
    with world.ctx.store.read() as s:
        minutes = {(r.project_pk, r.model, r.minute, r.source): (r.requests, r.input_tokens, r.output_tokens)
                   for r in s.execute(select(UsageMinute.__table__))}
        days = {(r.project_pk, r.model, r.day, r.source): (r.requests, r.input_tokens, r.output_tokens)
                for r in s.execute(select(UsageDay.__table__))}
        summaries = {(r.project_pk, r.model): (r.minute, (r.requests, r.tokens), r.prev_minute,
                                               (r.prev_requests, r.prev_tokens), r.day, r.day_requests)
                     for r in s.execute(select(UsageSummary.__table__))}
    for pk, model, minute, _day, delta in todo:
        assert minutes[(pk, model, minute, "local")] == (1 + delta[0], 1 + delta[1], delta[2])
    expected_days, expected_summaries = _expected(minutes)
    assert {k: v for k, v in days.items() if any(v)} == expected_days
    assert summaries == expected_summaries


def test_add_local_many_when_a_cell_repeats_is_refused(world):
    pk = world.project_pk(PROJECTS[0])
    cell = (pk, MODEL, MIDNIGHT, pacific_date(MIDNIGHT), (1, 0, 0))
    with pytest.raises(ValueError), world.ctx.store.write() as s:
        uq.add_local_many(s, [cell, cell])


def test_add_local_many_when_the_driver_refuses_raises_a_storage_error(world):
    gone = 10 ** 9  # no such project: the foreign key refuses the minute row
    cell = (gone, MODEL, MIDNIGHT, pacific_date(MIDNIGHT), (1, 0, 0))
    with pytest.raises(StorageError, match="database write failed"), world.ctx.store.write() as s:
        uq.add_local_many(s, [cell])
    with world.ctx.store.read() as s:
        assert s.execute(select(UsageMinute.__table__).where(UsageMinute.project_pk == gone)).first() is None
