"""A client-side pace for Google reads charged to one quota project: at most N in any 60 seconds.

Cloud Monitoring charges every `timeSeries.list` to the project that pays for the call (the
credentials' quota project), not to the project whose series are read, so a poll of a thousand
projects draws on one per-minute read quota. Google counts that quota per minute, so a burst is
fine as long as no 60-second window holds more than the budget; this pace keeps exactly that
promise for every thread of the process that shares it, instead of learning the limit from 429s
(each of which is itself a read, and which would fail projects once the retry budget is spent).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

WINDOW = 60.0
# A slot is held a little longer than the window: Google counts a read when it arrives, a moment
# after the slot was taken here, and its clock is not ours.
MARGIN = 2.0


class ReadPace:
    """Hands out read slots so that no `WINDOW` seconds hold more than `per_minute` of them."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if per_minute < 1:
            raise ValueError("a read pace needs at least one read a minute")
        self.per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._taken: deque[float] = deque()  # when each slot of the last WINDOW was handed out
        self.waited = 0.0  # total seconds callers spent waiting, for logs and benchmarks

    def acquire(self) -> None:
        """Block until one more read fits in the budget, then count it."""
        while True:
            with self._lock:
                now = self._clock()
                while self._taken and self._taken[0] <= now - WINDOW - MARGIN:
                    self._taken.popleft()
                if len(self._taken) < self.per_minute:
                    self._taken.append(now)
                    return
                wait = self._taken[0] + WINDOW + MARGIN - now
                self.waited += wait
            self._sleep(max(wait, 0.001))

    def used(self) -> int:
        """How many slots are held now (taken in the last WINDOW + MARGIN seconds)."""
        with self._lock:
            now = self._clock()
            return sum(1 for t in self._taken if t > now - WINDOW - MARGIN)


_shared: dict[tuple[str, int], ReadPace] = {}
_shared_lock = threading.Lock()


def shared_pace(name: str, per_minute: int) -> ReadPace:
    """Return the process-wide pace for `name` at `per_minute`: consecutive passes (and every
    worker thread) of one process draw on the same quota, so they must share one pace."""
    with _shared_lock:
        pace = _shared.get((name, per_minute))
        if pace is None:
            pace = _shared[(name, per_minute)] = ReadPace(per_minute)
        return pace
