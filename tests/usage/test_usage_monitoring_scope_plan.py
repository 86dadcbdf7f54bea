"""Which scope reads which project: every project exactly once, by the first scope that claims it."""

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from keyward.google.metrics_scopes import MetricsScope
from keyward.usage.monitoring_scopes import Target, assign, claims, slices, union_window

NUMBERS = st.sampled_from([str(100000000000 + i) for i in range(8)])


@st.composite
def worlds(draw):
    targets = [Target(i, f"project-{i:03d}", draw(st.one_of(st.none(), NUMBERS)), "m")
               for i in range(draw(st.integers(0, 8)))]
    scopes = [MetricsScope(f"scope-{j}", draw(NUMBERS), frozenset(draw(st.sets(NUMBERS))))
              for j in range(draw(st.integers(0, 3)))]
    return targets, scopes


@given(worlds())
def test_assign_reads_every_project_once_through_the_first_scope_that_claims_it(world):
    targets, scopes = world
    by_scope, alone = assign(targets, scopes)
    placed = [t for members in by_scope.values() for t in members] + alone
    assert sorted(t.pk for t in placed) == [t.pk for t in targets]
    for scope_name, members in by_scope.items():
        assert members
        for t in members:
            first = next(s for s in scopes if claims(s, t))
            assert first.scope == scope_name
    assert all(not any(claims(s, t) for s in scopes) for t in alone)


def test_a_project_without_a_number_is_claimed_only_by_its_own_scope():
    scope = MetricsScope("watch-tower", "900000000000", frozenset({"111111111111"}))
    assert claims(scope, Target(1, "watch-tower", None, "m"))
    assert not claims(scope, Target(2, "alpha-one", None, "m"))
    assert claims(scope, Target(3, "alpha-one", "111111111111", "m"))


def test_union_window_starts_at_the_earliest_member():
    end = datetime(2026, 3, 4, 12, tzinfo=timezone.utc)
    early, late = end.replace(hour=8), end.replace(hour=11)
    assert union_window({"a": late, "b": early}, end) == (early, end)


@given(st.integers(0, 3000), st.integers(1, 200))
def test_slices_cover_the_window_exactly_without_overlap(minutes, length):
    start = datetime(2026, 3, 4, tzinfo=timezone.utc)
    end = start + timedelta(minutes=minutes)
    pieces = slices(start, end, timedelta(minutes=length))
    assert [a for a, _ in pieces[1:]] == [b for _, b in pieces[:-1]]
    assert (pieces[0][0], pieces[-1][1]) == (start, end) if pieces else minutes == 0
    assert all(timedelta(0) < b - a <= timedelta(minutes=length) for a, b in pieces)
