"""The read pace: never more than the budget in any 60 seconds, whatever the number of threads."""

import threading

import pytest

from keyward.google.read_pace import MARGIN, WINDOW, ReadPace, shared_pace


class Clock:
    """A clock that only moves when a caller sleeps."""

    def __init__(self):
        self.now = 1000.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def test_pace_when_budget_is_spent_waits_until_the_oldest_read_is_a_minute_old():
    clock = Clock()
    pace = ReadPace(3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        pace.acquire()
    assert clock.now == 1000.0  # a burst within the budget does not wait
    pace.acquire()
    assert clock.now == pytest.approx(1000.0 + WINDOW + MARGIN)
    assert pace.used() == 1  # the first three left the window


def test_pace_shared_by_threads_never_holds_more_than_the_budget_in_a_window():
    clock = Clock()
    pace = ReadPace(5, clock=clock, sleep=clock.sleep)
    taken: list[float] = []
    lock = threading.Lock()

    def work():
        for _ in range(6):
            pace.acquire()
            with lock:
                taken.append(clock())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(taken) == 24
    taken.sort()
    for i, at in enumerate(taken):
        assert sum(1 for other in taken[i:] if other < at + WINDOW) <= 5


def test_shared_pace_is_one_per_budget():
    assert shared_pace("test", 7) is shared_pace("test", 7)
    assert shared_pace("test", 7) is not shared_pace("test", 8)


def test_pace_refuses_a_budget_below_one():
    with pytest.raises(ValueError):
        ReadPace(0)
