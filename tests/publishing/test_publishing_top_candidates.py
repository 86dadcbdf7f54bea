"""Choosing from the top of the kept load order decides exactly as choosing from every candidate."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from keyward.publishing.candidates import KeyOffer, LoadFacts, PoolOffers, build_candidates, top_candidates
from keyward.quota.selection import choose

NOW = datetime(2026, 3, 10, 18, 0, tzinfo=timezone.utc)


def _world(rng: random.Random):
    n = rng.randint(0, 12)
    offers, loads = [], {}
    for i in range(n):
        pid = f"p{i:02d}"
        for j in range(rng.choice([1, 1, 1, 2])):
            offers.append(KeyOffer(pid, f"k{i:02d}{j}", rng.random() > 0.15, rng.choice(["active"] * 5 + ["invalid"])))
        if rng.random() > 0.1:  # a few projects the book has not seen yet
            load = rng.choice([None, 0.0, 0.5, rng.random(), rng.random(), float("inf")])
            until = NOW + timedelta(minutes=rng.randint(1, 90)) if rng.random() < 0.3 else None
            if until is None and rng.random() < 0.1:
                until = NOW - timedelta(minutes=1)  # an exhaustion that has ended
            loads[pid] = LoadFacts(load, until)
    keys = [o.key_id for o in offers] + [None, "k-gone"]
    return offers, loads, rng.choice(keys)


def _order(loads):
    def key(pid):
        load = loads[pid].load
        return (0.0 if load is None else load, pid)

    return sorted(key(pid) for pid in loads)


def test_top_candidates_when_chosen_from_decide_like_all_candidates():
    rng = random.Random(1313)
    for case in range(3000):
        offers, loads, current = _world(rng)
        every = build_candidates(offers, loads, current)
        top = top_candidates(_order(loads), loads, PoolOffers.of(offers), current, NOW)
        expected = choose(every, current, NOW, 0.1)
        got = expected if top is None else choose(top, current, NOW, 0.1)
        assert got == expected, (case, offers, loads, current)


def test_top_candidates_when_many_projects_returns_only_a_few():
    offers = [KeyOffer(f"p{i:05d}", f"k{i:05d}", True) for i in range(5000)]
    loads = {o.project_id: LoadFacts(i / 5000, None) for i, o in enumerate(offers)}
    top = top_candidates(_order(loads), loads, PoolOffers.of(offers), "k04000", NOW)
    assert [c.key_id for c in top] == ["k00000", "k00001", "k04000"]
