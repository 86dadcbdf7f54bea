"""The per-project summary rows give the same loads as the minute buckets, whatever was written.

`keyward status` reads the summaries (through Core, `read_queries.status_projects`), as can
`pool_loads(..., summaries=True)`, and so does the daemon when its kept loads recompute the few
projects a report touched (one query for the given projects); the kept loads' full reads and every
other reader go on reading the buckets. They must never disagree after any mix of local reports,
429s and Monitoring points, across a Pacific midnight.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from usage_bodies import RPM_ID, quota_429, violation
from usage_world import MODEL, POOL, make_world

from keyward.quota.windows import Bucket, pacific_date, usage_at
from keyward.status import build_status
from keyward.storage import store as q
from keyward.storage import usage_queries as uq
from keyward.storage.models import Exhaustion, UsageDay, UsageMinute, UsageSummary
from keyward.usage import accounting

UTC = timezone.utc
MIDNIGHT = datetime(2026, 3, 9, 7, 0, tzinfo=UTC)  # a Pacific midnight (PDT)
START = MIDNIGHT - timedelta(minutes=3)
PROJECTS = ("alpha-one", "beta-two", "gamma-three")
LIMITS = {"rpm": 10, "tpm": 1000, "rpd": 100}

report = st.tuples(st.just("report"), st.sampled_from(PROJECTS), st.integers(0, 6), st.integers(1, 5),
                   st.integers(0, 300))
monitoring = st.tuples(st.just("monitoring"), st.sampled_from(PROJECTS), st.integers(0, 6),
                       st.integers(0, 8), st.integers(0, 400))
refused = st.tuples(st.just("429"), st.sampled_from(PROJECTS), st.integers(0, 6), st.just(0), st.just(0))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("summaries")
    w = make_world(tmp, f"sqlite:///{tmp / 'k.db'}", {p: LIMITS for p in PROJECTS}, now=START)
    yield w
    w.ctx.close()


def _apply(world, op, project, minute, requests, tokens) -> datetime:
    at = START + timedelta(minutes=minute, seconds=20)
    world.clock.now = at
    if op == "report":
        accounting.record_usage(world.ctx, key_id=world.keys[project], requests=requests,
                                input_tokens=tokens, at=at)
    elif op == "429":
        accounting.record_error(world.ctx, 429, quota_429(violation(RPM_ID)), key_id=world.keys[project],
                                at=at)
    else:
        floor = at.replace(second=0)
        with world.ctx.store.write() as s:
            pk = q.get_project(s, project).id
            uq.set_monitoring(s, pk, MODEL, floor, pacific_date(floor), (requests, tokens, 0))
    return at


def _loads(world, now, summaries, few=False):
    with world.ctx.store.read() as s:
        pool = q.get_pool(s, POOL)
        if few:  # one project at a time, as the kept loads recompute what a report touched
            found = [pl for project in PROJECTS for pl in accounting.pool_loads(
                s, pool, now, [q.get_project(s, project).id], summaries=summaries)]
        else:
            found = accounting.pool_loads(s, pool, now, summaries=summaries)
        return {pl.project_id: (pl.usage, pl.load, pl.exhausted_until, pl.limits) for pl in found}


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.one_of(report, monitoring, refused), min_size=1, max_size=14))
def test_summaries_when_reports_429s_and_monitoring_cross_midnight_equal_the_buckets(world, services, ops):
    with world.ctx.store.write() as s:
        for model in (UsageMinute, UsageDay, UsageSummary, Exhaustion):
            s.execute(delete(model))
    latest = START
    for op in ops:
        latest = max(latest, _apply(world, *op))
    # Readers look at the present: from the latest write on, through the midnight and past it.
    for seconds in (0, 30, 60, 100, 150, 3600):
        now = latest + timedelta(seconds=seconds)
        from_buckets = _loads(world, now, summaries=False)
        assert _loads(world, now, summaries=True) == from_buckets
        assert _loads(world, now, summaries=True, few=True) == from_buckets
        assert _status_figures(world, now) == {  # status reads the summaries through Core
            project: ({"rpm": usage.rpm, "tpm": usage.tpm, "rpd": usage.rpd}, until)
            for project, (usage, _load, until, _limits) in from_buckets.items()}
        for project in PROJECTS:  # and both agree with the pure window function
            expected = usage_at(_merged_buckets(world, project), now)
            assert (from_buckets[project][0].rpm, from_buckets[project][0].tpm) == (expected.rpm, expected.tpm)


def _status_figures(world, now):
    world.clock.now = now
    return {p["project_id"]: ({name: u["used"] for name, u in p["usage"].items()},
                              None if p["exhausted_until"] is None else datetime.fromisoformat(p["exhausted_until"]))
            for p in build_status(world.ctx)["projects"]}


def _merged_buckets(world, project):
    with world.ctx.store.read() as s:
        totals = uq.minute_totals(s, q.get_project(s, project).id, MODEL)
    merged: dict[datetime, tuple[int, int]] = {}
    for (minute, _source), (requests, tokens, _out) in totals.items():
        old = merged.get(minute, (0, 0))
        merged[minute] = (max(old[0], requests), max(old[1], tokens))
    return [Bucket(m, r, t) for m, (r, t) in merged.items()]


def test_summaries_when_monitoring_lowers_a_minute_follow_it(world, services):
    with world.ctx.store.write() as s:
        for model in (UsageMinute, UsageDay, UsageSummary, Exhaustion):
            s.execute(delete(model))
    _apply(world, "monitoring", "alpha-one", 1, 7, 70)
    _apply(world, "report", "alpha-one", 1, 2, 20)
    _apply(world, "monitoring", "alpha-one", 1, 1, 10)  # Monitoring revised its point down
    now = START + timedelta(minutes=1, seconds=40)
    got = _loads(world, now, summaries=True)["alpha-one"][0]
    assert (got.rpm, got.tpm, got.rpd) == (2, 20, 2)
    assert _loads(world, now, summaries=False)["alpha-one"][0] == got


def test_summaries_when_a_late_point_fills_the_previous_minute_count_it(world, services):
    with world.ctx.store.write() as s:
        for model in (UsageMinute, UsageDay, UsageSummary, Exhaustion):
            s.execute(delete(model))
    _apply(world, "report", "beta-two", 2, 3, 30)
    _apply(world, "monitoring", "beta-two", 1, 4, 40)  # Monitoring lags: the minute before arrives late
    _apply(world, "monitoring", "beta-two", 0, 5, 50)  # older still: outside the RPM window
    now = START + timedelta(minutes=2, seconds=40)
    got = _loads(world, now, summaries=True)["beta-two"][0]
    assert (got.rpm, got.tpm, got.rpd) == (7, 70, 12)
    assert _loads(world, now, summaries=False)["beta-two"][0] == got
