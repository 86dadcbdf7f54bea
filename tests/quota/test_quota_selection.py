"""Least-loaded key choice: hysteresis, exhaustion, ties and unusable keys."""

from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta, timezone

import pytest

from keyward.quota.selection import Candidate, Choice, choose

NOW = datetime(2026, 3, 8, 6, 0, tzinfo=timezone.utc)
LATER = NOW + timedelta(hours=1)


def cand(project: str, load: float | None, until: datetime | None = None, usable: bool = True,
         key: str | None = None) -> Candidate:
    return Candidate(project_id=project, key_id=key or f"{project}-key", load=load,
                     exhausted_until=until, usable=usable)


def test_choose_with_no_current_picks_least_loaded_and_names_both_loads():
    c = choose([cand("proj-b", 0.40), cand("proj-a", 0.12)], None, NOW, 0.1)
    assert (c.project_id, c.key_id) == ("proj-a", "proj-a-key")
    assert c.switched and not c.all_exhausted
    assert "least loaded" in c.reason and "12%" in c.reason and "40%" in c.reason


def test_choose_when_current_within_margin_keeps_it():
    c = choose([cand("p1", 0.35), cand("p2", 0.30)], "p1-key", NOW, 0.10)
    assert c.key_id == "p1-key" and not c.switched
    assert c.reason == "kept: within margin (35% vs 30% + 10% for p2)"


def test_choose_when_current_exactly_at_margin_keeps_it():
    c = choose([cand("p1", 0.7), cand("p2", 0.6)], "p1-key", NOW, 0.1)
    assert c.key_id == "p1-key" and not c.switched


def test_choose_when_current_worse_beyond_margin_switches():
    c = choose([cand("p1", 0.45), cand("p2", 0.30)], "p1-key", NOW, 0.10)
    assert c.key_id == "p2-key" and c.switched
    assert "switched" in c.reason and "45%" in c.reason and "30%" in c.reason


def test_choose_when_current_is_best_keeps_it():
    c = choose([cand("p1", 0.1), cand("p2", 0.3)], "p1-key", NOW, 0.0)
    assert c.key_id == "p1-key" and not c.switched and c.reason.startswith("kept")


def test_choose_when_loads_oscillate_inside_margin_never_flaps():
    current = None
    switches = 0
    for step in range(50):
        wobble = 0.04 if step % 2 else -0.04
        c = choose([cand("p1", 0.5 + wobble), cand("p2", 0.5 - wobble)], current, NOW, 0.10)
        switches += c.switched
        current = c.key_id
    assert switches == 1  # only the first publication


def test_choose_when_current_exhausted_switches_and_says_until_when():
    until = datetime(2026, 3, 8, 7, 0, tzinfo=timezone.utc)
    c = choose([cand("my-proj-1", 0.1, until), cand("my-proj-2", 0.8)], "my-proj-1-key", NOW, 0.5)
    assert c.key_id == "my-proj-2-key" and c.switched and not c.all_exhausted
    assert "my-proj-1 exhausted until 07:00 UTC" in c.reason


def test_choose_when_exhaustion_has_expired_treats_candidate_as_available():
    c = choose([cand("p1", 0.1, NOW), cand("p2", 0.5)], "p1-key", NOW, 0.0)
    assert c.key_id == "p1-key" and not c.switched  # exhausted_until == now: free again
    c = choose([cand("p1", 0.1, NOW - timedelta(seconds=1)), cand("p2", 0.5)], None, NOW, 0.0)
    assert c.key_id == "p1-key"


def test_choose_when_current_unusable_switches():
    c = choose([cand("p1", 0.0, usable=False), cand("p2", 0.9)], "p1-key", NOW, 0.5)
    assert c.key_id == "p2-key" and c.switched and "not usable" in c.reason


def test_choose_when_current_gone_switches():
    c = choose([cand("p2", 0.9)], "p1-key", NOW, 0.5)
    assert c.key_id == "p2-key" and c.switched and "no longer in the pool" in c.reason


def test_choose_never_picks_unusable_even_if_least_loaded():
    c = choose([cand("p1", 0.0, usable=False), cand("p2", 0.9), cand("p3", 0.95)], None, NOW, 0.0)
    assert c.key_id == "p2-key"


def test_choose_when_every_candidate_exhausted_picks_earliest_recovery():
    soon = NOW + timedelta(minutes=1)
    cs = [cand("p1", 0.1, LATER), cand("p2", 0.9, soon), cand("p3", 0.0, LATER)]
    c = choose(cs, "p1-key", NOW, 0.1)
    assert c.key_id == "p2-key" and c.all_exhausted and c.switched
    assert "all keys exhausted" in c.reason and "06:01 UTC" in c.reason


def test_choose_when_every_candidate_exhausted_at_same_time_prefers_current_then_load():
    cs = [cand("p1", 0.9, LATER), cand("p2", 0.1, LATER)]
    assert choose(cs, None, NOW, 0.0).key_id == "p2-key"
    kept = choose(cs, "p1-key", NOW, 0.0)
    assert kept.key_id == "p1-key" and kept.all_exhausted and not kept.switched


def test_choose_all_exhausted_ignores_unusable_candidates():
    cs = [cand("p1", 0.0, NOW + timedelta(seconds=5), usable=False), cand("p2", 0.5, LATER)]
    c = choose(cs, None, NOW, 0.0)
    assert c.key_id == "p2-key" and c.all_exhausted


def test_choose_with_no_candidates_reports_empty_pool():
    assert choose([], "p1-key", NOW, 0.1) == Choice(None, None, "no active key in the pool",
                                                     all_exhausted=False, switched=True)
    assert choose([], None, NOW, 0.1).switched is False


def test_choose_when_only_unusable_candidates_publishes_nothing():
    c = choose([cand("p1", 0.1, usable=False)], "p1-key", NOW, 0.1)
    assert c.key_id is None and c.switched and not c.all_exhausted


def test_choose_ties_are_broken_by_project_then_key_whatever_the_order():
    cs = [cand("p2", 0.5, key="a"), cand("p1", 0.5, key="z"), cand("p1", 0.5, key="b")]
    for perm in itertools.permutations(cs):
        c = choose(list(perm), None, NOW, 0.0)
        assert (c.project_id, c.key_id) == ("p1", "b")


def test_choose_unknown_load_counts_as_zero_and_says_so():
    c = choose([cand("p1", None), cand("p2", 0.2)], None, NOW, 0.0)
    assert c.key_id == "p1-key" and "no usage limits known" in c.reason


def test_choose_infinite_load_sorts_last():
    c = choose([cand("p1", float("inf")), cand("p2", 3.0)], None, NOW, 0.0)
    assert c.key_id == "p2-key"


def test_choose_with_negative_margin_raises_value_error():
    with pytest.raises(ValueError):
        choose([cand("p1", 0.1)], None, NOW, -0.1)
    with pytest.raises(ValueError):
        choose([cand("p1", 0.1)], None, NOW, float("nan"))


def test_choose_with_naive_now_raises_value_error():
    with pytest.raises(ValueError):
        choose([cand("p1", 0.1)], None, datetime(2026, 1, 1), 0.1)


def test_choose_properties_hold_over_random_pools():
    rng = random.Random(20260308)
    for _ in range(3000):
        n = rng.randint(1, 6)
        cs = []
        for i in range(n):
            until = rng.choice([None, NOW - timedelta(seconds=1), NOW, NOW + timedelta(seconds=rng.randint(1, 9))])
            load = rng.choice([None, round(rng.random(), 2), round(rng.random() * 2, 1)])
            cs.append(cand(f"p{rng.randint(0, 3)}", load, until, usable=rng.random() > 0.2, key=f"k{i}"))
        current = rng.choice([None, "k0", f"k{n - 1}", "gone"])
        margin = rng.choice([0.0, 0.05, 0.2])
        c = choose(cs, current, NOW, margin)
        by_key = {x.key_id: x for x in cs}
        usable = [x for x in cs if x.usable]
        live = [x for x in usable if x.exhausted_until is None or x.exhausted_until <= NOW]
        assert c.switched == (c.key_id != current)
        if not usable:
            assert c.key_id is None
            continue
        chosen = by_key[c.key_id]
        assert chosen.usable
        assert c.all_exhausted == (not live)
        if live:
            assert chosen in live
            best = min((x.load or 0.0) for x in live)
            assert (chosen.load or 0.0) <= best + margin + 1e-9
            if c.switched:
                assert (chosen.load or 0.0) == best
        else:
            assert chosen.exhausted_until == min(x.exhausted_until for x in usable)
        assert choose(cs, current, NOW, margin) == c  # deterministic
