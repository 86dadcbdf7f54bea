"""Retrying Google calls that failed for a passing reason, within a time budget.

Google's client libraries retry with randomized exponential backoff; keyward does the same here
rather than in `execute(num_retries=...)`, so the total time is bounded by a budget the caller
chooses and tests can pass a fake `sleep`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from keyward.errors import Transient

log = logging.getLogger(__name__)

T = TypeVar("T")

BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0


def with_retries(fn: Callable[[], T], *, budget_seconds: float,
                 on_retry: Callable[[int, float, Transient], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: Callable[[], float] = random.random) -> T:
    """Call `fn` until it does not raise Transient, within `budget_seconds` in total.

    Backoff is exponential with full jitter (base 1 s, cap 30 s), never shorter than a server's
    RetryInfo delay. The budget counts the time spent in `fn` plus the sleeps asked for, so a fake
    `sleep` in tests still exhausts it. When the next sleep would overrun it, the last Transient
    is raised. `on_retry(attempt, delay, error)` is called before each sleep.
    """
    spent = 0.0
    attempt = 0
    while True:
        started = time.monotonic()
        try:
            return fn()
        except Transient as exc:
            spent += time.monotonic() - started
            attempt += 1
            delay = rng() * min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
            delay = max(delay, getattr(exc, "retry_after", None) or 0.0)
            if spent + delay >= budget_seconds:
                log.debug("giving up after %d attempt(s), %.1f s: %s", attempt, spent, exc)
                raise
            log.debug("attempt %d failed (%s); retrying in %.2f s", attempt, exc, delay)
            if on_retry is not None:
                on_retry(attempt, delay, exc)
            sleep(delay)
            spent += delay
