"""Pacific-day boundaries (both DST switch days), minute windows and load arithmetic."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone

import pytest

from keyward.quota.windows import (
    PACIFIC,
    Bucket,
    Limits,
    Usage,
    binding_limit,
    headroom,
    load,
    minute_floor,
    next_pacific_midnight,
    pacific_date,
    pacific_day_start,
    usage_at,
    utc_clock,
)

UTC = timezone.utc
MICRO = timedelta(microseconds=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- the Pacific day -------------------------------------------------------------------------

def test_pacific_day_on_ordinary_winter_day_is_24h_from_0800_utc():
    now = utc(2026, 1, 15, 20, 0)
    assert pacific_day_start(now) == utc(2026, 1, 15, 8, 0)
    assert next_pacific_midnight(now) == utc(2026, 1, 16, 8, 0)


def test_pacific_day_on_ordinary_summer_day_starts_0700_utc():
    now = utc(2026, 7, 4, 3, 0)  # still July 3rd in California
    assert pacific_date(now) == date(2026, 7, 3)
    assert pacific_day_start(now) == utc(2026, 7, 3, 7, 0)
    assert next_pacific_midnight(now) == utc(2026, 7, 4, 7, 0)


def test_pacific_day_on_spring_forward_day_lasts_23_hours():
    now = utc(2026, 3, 8, 18, 0)
    start, end = pacific_day_start(now), next_pacific_midnight(now)
    assert start == utc(2026, 3, 8, 8, 0)  # midnight PST, before the switch
    assert end == utc(2026, 3, 9, 7, 0)  # midnight PDT, after it
    assert end - start == timedelta(hours=23)


def test_pacific_day_on_fall_back_day_lasts_25_hours():
    now = utc(2026, 11, 1, 18, 0)
    start, end = pacific_day_start(now), next_pacific_midnight(now)
    assert start == utc(2026, 11, 1, 7, 0)  # midnight PDT, before the switch
    assert end == utc(2026, 11, 2, 8, 0)  # midnight PST, after it
    assert end - start == timedelta(hours=25)


@pytest.mark.parametrize(
    "midnight, day_before, day_of",
    [
        (utc(2026, 3, 8, 8, 0), date(2026, 3, 7), date(2026, 3, 8)),  # into the 23 h day
        (utc(2026, 3, 9, 7, 0), date(2026, 3, 8), date(2026, 3, 9)),  # out of the 23 h day
        (utc(2026, 11, 1, 7, 0), date(2026, 10, 31), date(2026, 11, 1)),  # into the 25 h day
        (utc(2026, 11, 2, 8, 0), date(2026, 11, 1), date(2026, 11, 2)),  # out of the 25 h day
    ],
)
def test_pacific_midnight_around_dst_days_when_crossed_day_flips_exactly(midnight, day_before, day_of):
    just_before, just_after = midnight - MICRO, midnight + MICRO
    assert pacific_date(just_before) == day_before
    assert pacific_date(midnight) == day_of
    assert pacific_date(just_after) == day_of
    assert next_pacific_midnight(just_before) == midnight
    assert next_pacific_midnight(midnight) > midnight  # strictly after
    assert pacific_day_start(midnight) == midnight  # at or before
    assert pacific_day_start(just_after) == midnight
    assert pacific_day_start(just_before) < midnight


def test_pacific_day_during_switch_hours_when_clock_jumps_stays_on_same_day():
    # 02:00 PST on 2026-03-08 does not exist; 01:30 on 2026-11-01 happens twice.
    for now in (utc(2026, 3, 8, 9, 59), utc(2026, 3, 8, 10, 1),
                utc(2026, 11, 1, 8, 30), utc(2026, 11, 1, 9, 30)):
        assert pacific_day_start(now) == pacific_day_start(now.replace(hour=20))
        assert next_pacific_midnight(now) == next_pacific_midnight(now.replace(hour=20))


def test_pacific_day_when_given_other_zone_returns_utc_instants():
    now = datetime(2026, 3, 8, 12, 0, tzinfo=PACIFIC)  # 19:00 UTC
    assert pacific_day_start(now).tzinfo == UTC
    assert pacific_day_start(now) == utc(2026, 3, 8, 8, 0)
    assert next_pacific_midnight(now).utcoffset() == timedelta(0)


def test_pacific_day_every_day_of_2026_when_walked_chains_without_gaps():
    start = pacific_day_start(utc(2026, 1, 1, 12, 0))
    lengths = {}
    for _ in range(365):
        end = next_pacific_midnight(start)
        assert pacific_day_start(end - MICRO) == start
        lengths[pacific_date(start)] = end - start
        start = end
    odd = {d: n for d, n in lengths.items() if n != timedelta(hours=24)}
    assert odd == {date(2026, 3, 8): timedelta(hours=23), date(2026, 11, 1): timedelta(hours=25)}


def test_window_functions_when_now_is_naive_raise_value_error():
    naive = datetime(2026, 1, 1, 12, 0)
    for fn in (pacific_day_start, next_pacific_midnight, pacific_date, minute_floor):
        with pytest.raises(ValueError):
            fn(naive)
    with pytest.raises(ValueError):
        usage_at([], naive)


# --- minutes and usage -----------------------------------------------------------------------

def test_minute_floor_when_mid_minute_drops_seconds_and_converts_to_utc():
    assert minute_floor(utc(2026, 1, 1, 12, 34, 56, 789)) == utc(2026, 1, 1, 12, 34)
    pst = datetime(2026, 1, 1, 4, 34, 56, tzinfo=PACIFIC)
    assert minute_floor(pst) == utc(2026, 1, 1, 12, 34)


def b(minute: datetime, requests: int, tokens: int = 0) -> Bucket:
    return Bucket(minute=minute, requests=requests, input_tokens=tokens)


def test_usage_at_mid_minute_counts_current_and_whole_previous_minute():
    now = utc(2026, 5, 1, 12, 0, 30)
    buckets = [b(utc(2026, 5, 1, 11, 58), 100, 1000), b(utc(2026, 5, 1, 11, 59), 7, 70),
               b(utc(2026, 5, 1, 12, 0), 3, 30)]
    assert usage_at(buckets, now) == Usage(rpm=10, tpm=100, rpd=110)


def test_usage_at_exact_minute_edge_still_counts_previous_minute():
    now = utc(2026, 5, 1, 12, 0, 0)
    buckets = [b(utc(2026, 5, 1, 11, 58), 100), b(utc(2026, 5, 1, 11, 59), 7)]
    assert usage_at(buckets, now).rpm == 7


def test_usage_at_end_of_minute_drops_two_minutes_ago():
    now = utc(2026, 5, 1, 12, 0, 59, 999999)
    buckets = [b(utc(2026, 5, 1, 11, 58), 100), b(utc(2026, 5, 1, 11, 59), 7),
               b(utc(2026, 5, 1, 12, 0), 1)]
    assert usage_at(buckets, now).rpm == 8
    assert usage_at(buckets, now + MICRO).rpm == 1  # 12:01:00: only 12:00 and 12:01 count


def test_usage_at_never_undercounts_a_true_sliding_minute():
    # Any request inside (now-60s, now] lies in a counted bucket, wherever `now` falls.
    base = utc(2026, 5, 1, 12, 0)
    for offset_s in range(0, 180, 7):
        now = base + timedelta(seconds=offset_s, microseconds=offset_s * 1234)
        for back_s in range(0, 60):
            event = now - timedelta(seconds=back_s)
            assert usage_at([b(minute_floor(event), 1)], now).rpm == 1, (now, event)


def test_usage_at_when_buckets_repeat_a_minute_adds_them_and_ignores_future():
    now = utc(2026, 5, 1, 12, 0, 10)
    buckets = [b(utc(2026, 5, 1, 12, 0), 2, 20), b(utc(2026, 5, 1, 12, 0, 40), 3, 30),
               b(utc(2026, 5, 1, 12, 1), 50, 500)]
    assert usage_at(buckets, now) == Usage(rpm=5, tpm=50, rpd=5)


def test_usage_at_rpd_on_fall_back_day_counts_all_25_hours_and_nothing_before():
    now = utc(2026, 11, 2, 7, 59)  # 23:59 PST, last minute of the 25 h day
    day_start = utc(2026, 11, 1, 7, 0)
    buckets = [b(day_start - timedelta(minutes=1), 1000), b(day_start, 1),
               b(utc(2026, 11, 1, 9, 30), 1), b(now, 1)]
    assert usage_at(buckets, now).rpd == 3
    assert usage_at(buckets, utc(2026, 11, 2, 8, 0)).rpd == 0  # next day: counter reset


def test_usage_at_rpd_on_spring_forward_day_resets_at_0700_utc():
    buckets = [b(utc(2026, 3, 8, 8, 0), 5), b(utc(2026, 3, 9, 6, 59), 2), b(utc(2026, 3, 9, 7, 0), 1)]
    assert usage_at(buckets, utc(2026, 3, 9, 6, 59, 59)).rpd == 7
    assert usage_at(buckets, utc(2026, 3, 9, 7, 0, 1)).rpd == 1


# --- load and headroom ------------------------------------------------------------------------

def test_load_when_all_limits_known_returns_the_worst_fraction():
    assert load(Usage(5, 1000, 100), Limits(10, 250_000, 250)) == pytest.approx(0.5)
    assert binding_limit(Usage(5, 1000, 200), Limits(10, 250_000, 250)) == "rpd"


def test_load_when_some_limits_missing_uses_only_known_ones():
    assert load(Usage(9, 10**9, 10**6), Limits(10, None, None)) == pytest.approx(0.9)
    assert load(Usage(0, 5000, 0), Limits(None, 10_000, None)) == pytest.approx(0.5)


def test_load_when_no_limit_known_returns_none():
    assert load(Usage(5, 5, 5), Limits(None, None, None)) is None
    assert binding_limit(Usage(5, 5, 5), Limits(None, None, None)) is None


def test_load_when_limit_is_minus_one_treats_it_as_unlimited():
    assert load(Usage(500, 0, 0), Limits(-1, None, 1000)) == pytest.approx(0.0)


def test_load_when_limit_is_zero_is_infinite():
    assert math.isinf(load(Usage(0, 0, 0), Limits(0, None, None)))


def test_load_when_over_limit_exceeds_one():
    assert load(Usage(12, 0, 0), Limits(10, None, None)) == pytest.approx(1.2)


def test_headroom_when_over_limit_floors_at_zero_and_keeps_unknown_none():
    assert headroom(Usage(12, 100, 3), Limits(10, 1000, None)) == Limits(0, 900, None)


def test_utc_clock_shows_date_only_when_not_today():
    now = utc(2026, 3, 8, 12, 0)
    assert utc_clock(utc(2026, 3, 8, 12, 0, 26), now) == "12:00:26 UTC"
    assert utc_clock(utc(2026, 3, 9, 7, 0), now) == "2026-03-09 07:00 UTC"
