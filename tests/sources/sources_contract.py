"""The contract every pulled usage source keeps; each source's tests inherit this class and
provide `source` (the source under test) and `make_traffic(n)` (n quota-using requests in
project `PROJECT` during the current minute, returning that minute)."""

from __future__ import annotations

from datetime import timedelta

from keyward.sources import Observation, UsageSource

PROJECT = "alpha-one"


class UsageSourceContract:
    def test_is_a_usage_source_with_a_name(self, source):
        assert isinstance(source, UsageSource) and source.name

    def test_read_returns_absolute_counts_of_whole_minutes(self, source, make_traffic):
        minute = make_traffic(3)
        got = source.read(PROJECT, minute - timedelta(minutes=5), minute + timedelta(minutes=1))
        assert all(isinstance(o, Observation) for o in got)
        assert all(o.minute.second == 0 and o.minute.microsecond == 0 for o in got)
        assert sum(o.requests for o in got if o.minute == minute) == 3

    def test_reading_twice_gives_the_same_counts(self, source, make_traffic):
        minute = make_traffic(2)
        window = (minute - timedelta(minutes=5), minute + timedelta(minutes=1))
        first = sorted(source.read(PROJECT, *window), key=repr)
        assert first == sorted(source.read(PROJECT, *window), key=repr)

    def test_read_of_a_window_without_traffic_is_empty(self, source, make_traffic):
        minute = make_traffic(1)
        assert [o for o in source.read(PROJECT, minute - timedelta(minutes=30),
                                       minute - timedelta(minutes=20)) if o.requests] == []
