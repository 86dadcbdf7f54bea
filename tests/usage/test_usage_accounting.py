"""Recording usage and refused calls, and reading loads, on a real SQLite database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from usage_bodies import RPD_ID, RPM_ID, TPM_ID, key_invalid_400, quota_429, suspended_403, \
    token_type_401, violation
from usage_world import MODEL, POOL, make_world

from keyward.errors import NotFound, UsageError
from keyward.quota.windows import pacific_date
from keyward.storage import store as q
from keyward.storage import usage_queries as uq
from keyward.usage import accounting

UTC = timezone.utc
NOW = datetime(2026, 3, 8, 12, 0, 30, tzinfo=UTC)  # spring-forward day: next midnight 07:00 UTC
NEXT_MIDNIGHT = datetime(2026, 3, 9, 7, 0, tzinfo=UTC)
LIMITS = {"rpm": 10, "tpm": 1000, "rpd": 100}


@pytest.fixture
def world(tmp_path, sqlite_url):
    w = make_world(tmp_path, sqlite_url, {"alpha-one": LIMITS, "beta-two": None, "gamma-three": LIMITS},
                   now=NOW, managed=("gamma-three",))
    yield w
    w.ctx.close()


def loads(world):
    with world.ctx.store.read() as s:
        return {l.project_id: l for l in accounting.pool_loads(s, q.get_pool(s, POOL), world.clock.now)}


def test_record_usage_when_key_string_given_counts_its_project(world):
    key_id = accounting.record_usage(world.ctx, key=world.secrets["beta-two"], requests=2,
                                     input_tokens=30)
    assert key_id == world.keys["beta-two"]
    got = loads(world)
    assert (got["beta-two"].usage.rpm, got["beta-two"].usage.tpm, got["beta-two"].usage.rpd) == (2, 30, 2)
    assert got["alpha-one"].usage.rpm == 0


def test_record_usage_when_no_key_named_uses_the_pools_current_key(world):
    assert accounting.record_usage(world.ctx, pool=POOL, requests=4) == world.keys["alpha-one"]
    assert accounting.record_usage(world.ctx, key_id=world.keys["gamma-three"]) == world.keys["gamma-three"]
    got = loads(world)
    assert got["alpha-one"].usage.rpm == 4 and got["gamma-three"].usage.rpm == 1


def test_record_usage_when_key_unknown_raises_not_found_without_the_key(world):
    from support.fakes import fake_auth_key

    secret = fake_auth_key()
    with pytest.raises(NotFound) as caught:
        accounting.record_usage(world.ctx, key=secret)
    assert secret not in str(caught.value) and secret[-4:] in str(caught.value)


def test_record_usage_when_pool_unknown_raises_not_found(world):
    with pytest.raises(NotFound, match="nowhere"):
        accounting.record_usage(world.ctx, pool="nowhere")


def test_record_usage_when_source_is_not_local_is_refused(world):
    with pytest.raises(UsageError):
        accounting.record_usage(world.ctx, pool=POOL, source="monitoring")


def test_pool_loads_when_minutes_pass_keeps_rpd_and_drops_old_rpm(world):
    accounting.record_usage(world.ctx, pool=POOL, requests=5, input_tokens=100)
    world.clock.now = NOW + timedelta(minutes=1)
    accounting.record_usage(world.ctx, pool=POOL, requests=2, input_tokens=10)
    got = loads(world)["alpha-one"]
    assert (got.usage.rpm, got.usage.tpm, got.usage.rpd) == (7, 110, 7)
    assert got.load == pytest.approx(0.7) and got.limit_source == "config"
    world.clock.now = NOW + timedelta(minutes=3)
    got = loads(world)["alpha-one"]
    assert (got.usage.rpm, got.usage.tpm, got.usage.rpd) == (0, 0, 7)
    assert got.rpd_reset_at == NEXT_MIDNIGHT


def test_pool_loads_when_pacific_midnight_passes_resets_rpd(world):
    accounting.record_usage(world.ctx, pool=POOL, requests=5)
    world.clock.now = NEXT_MIDNIGHT + timedelta(seconds=5)
    assert loads(world)["alpha-one"].usage.rpd == 0


def test_local_and_monitoring_of_one_minute_count_the_larger_never_both(world):
    pk = world.project_pk("alpha-one")
    minute = NOW.replace(second=0)
    day = pacific_date(NOW)
    accounting.record_usage(world.ctx, pool=POOL, requests=3, input_tokens=30)
    with world.ctx.store.write() as s:
        uq.set_monitoring(s, pk, MODEL, minute, day, (5, 20, 0))
    got = loads(world)["alpha-one"]
    assert (got.usage.rpm, got.usage.tpm, got.usage.rpd) == (5, 30, 5)
    # Monitoring re-reads the minute later and sees more: replaced, not added.
    with world.ctx.store.write() as s:
        uq.set_monitoring(s, pk, MODEL, minute, day, (6, 40, 0))
    accounting.record_usage(world.ctx, pool=POOL, requests=4)  # local now 7 > 6
    got = loads(world)["alpha-one"]
    assert (got.usage.rpm, got.usage.tpm, got.usage.rpd) == (7, 40, 7)
    with world.ctx.store.read() as s:
        days = uq.day_totals(s, pk, MODEL, day)
    assert days["local"][0] == 7 and days["monitoring"][0] == 6 and days["effective"][0] == 7


def test_effective_day_sums_the_larger_count_of_each_minute(world):
    pk = world.project_pk("alpha-one")
    day = pacific_date(NOW)
    early = NOW.replace(second=0) - timedelta(minutes=30)
    with world.ctx.store.write() as s:  # traffic no tool reported, seen by Monitoring only
        uq.set_monitoring(s, pk, MODEL, early, day, (10, 0, 0))
    accounting.record_usage(world.ctx, pool=POOL, requests=3)  # inside Monitoring's lag
    assert loads(world)["alpha-one"].usage.rpd == 13


def test_per_minute_429_marks_exhausted_until_retry_delay_and_republishes(world, services):
    signal = accounting.record_error(world.ctx, 429, quota_429(violation(RPM_ID)), pool=POOL)
    assert signal.kind == "quota"
    got = loads(world)["alpha-one"]
    assert got.exhausted_until == NOW + timedelta(seconds=26) and got.exhausted_scope == "minute"
    assert services.published == [((POOL,), "exhausted")]
    with world.ctx.store.read() as s:
        assert q.get_key(s, world.keys["alpha-one"]).state == "active"  # quota says nothing of the key
    world.clock.now = NOW + timedelta(seconds=27)
    assert loads(world)["alpha-one"].exhausted_until is None


def test_per_day_429_marks_exhausted_until_next_pacific_midnight(world, services):
    accounting.record_error(world.ctx, 429, quota_429(violation(RPD_ID, "250")),
                            key_id=world.keys["beta-two"])
    got = loads(world)["beta-two"]
    assert got.exhausted_until == NEXT_MIDNIGHT and got.exhausted_scope == "day"


def test_token_429_marks_tokens_scope(world, services):
    accounting.record_error(world.ctx, 429, quota_429(violation(TPM_ID, "250000"), retry="40s"),
                            pool=POOL)
    got = loads(world)["alpha-one"]
    assert got.exhausted_scope == "tokens" and got.exhausted_until == NOW + timedelta(seconds=40)


def test_429_with_several_violations_keeps_the_strictest(world, services):
    body = quota_429(violation(RPM_ID), violation(TPM_ID, "250000"), violation(RPD_ID, "250"))
    signal = accounting.record_error(world.ctx, 429, body, pool=POOL)
    assert set(signal.quota_ids) == {RPM_ID, TPM_ID, RPD_ID}
    got = loads(world)["alpha-one"]
    assert got.exhausted_scope == "day" and got.exhausted_until == NEXT_MIDNIGHT


def test_shorter_429_after_a_per_day_one_never_shortens_exhaustion(world, services):
    accounting.record_error(world.ctx, 429, quota_429(violation(RPD_ID)), pool=POOL)
    accounting.record_error(world.ctx, 429, quota_429(violation(RPM_ID)), pool=POOL)
    assert loads(world)["alpha-one"].exhausted_until == NEXT_MIDNIGHT
    assert services.published == [((POOL,), "exhausted")]  # the second changed nothing


@pytest.mark.parametrize("status, body, words", [
    (400, key_invalid_400(), "API_KEY_INVALID"),
    (401, token_type_401(), "ACCESS_TOKEN_TYPE_UNSUPPORTED"),
    (403, suspended_403(), "CONSUMER_SUSPENDED"),
])
def test_rejected_key_is_taken_out_journaled_and_republished(world, services, status, body, words):
    signal = accounting.record_error(world.ctx, status, body, key=world.secrets["beta-two"])
    assert signal.kind in ("invalid_key", "suspended")
    with world.ctx.store.read() as s:
        key = q.get_key(s, world.keys["beta-two"])
        assert key.state == "invalid" and words in key.invalid_reason and key.invalid_at == NOW
        events = q.recent_events(s, 5, levels=["error"])
    assert [(e.kind, e.key_id) for e in events] == [("key.invalid", world.keys["beta-two"])]
    assert world.secrets["beta-two"] not in events[0].message
    assert services.published == [((POOL,), "invalid")]
    assert services.replaced == []  # beta-two is not managed


def test_rejected_key_of_managed_project_is_replaced(world, services):
    accounting.record_error(world.ctx, 400, key_invalid_400(), key_id=world.keys["gamma-three"])
    assert services.replaced == [world.keys["gamma-three"]]


def test_transient_error_changes_nothing(world, services):
    signal = accounting.record_error(world.ctx, 503, '{"error": {"code": 503}}', pool=POOL)
    assert signal.kind == "transient" and services.published == []
    assert loads(world)["alpha-one"].exhausted_until is None


def test_prune_deletes_old_minutes_and_days_but_keeps_todays_total(world):
    accounting.record_usage(world.ctx, pool=POOL, requests=3, at=NOW - timedelta(days=100))
    accounting.record_usage(world.ctx, pool=POOL, requests=2, at=NOW - timedelta(hours=50))
    accounting.record_usage(world.ctx, pool=POOL, requests=1)
    counts = accounting.prune(world.ctx)
    assert counts["minutes"] == 2 and counts["days"] == 2  # 100 days ago: its local and effective rows
    pk = world.project_pk("alpha-one")
    with world.ctx.store.read() as s:
        assert len(uq.minute_totals(s, pk, MODEL)) == 1
        assert uq.day_totals(s, pk, MODEL, pacific_date(NOW - timedelta(hours=50)))["effective"][0] == 2
    assert loads(world)["alpha-one"].usage.rpd == 1
