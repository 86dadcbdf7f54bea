"""Choose which key to publish: the least-loaded usable project, without flapping.

Quota belongs to the project, so every key of a project shares its load. The published key
changes only when it has to (its project is exhausted, the key is unusable or gone) or when
another project is better by more than `margin` (hysteresis): consumers that cache the key
should not see it change every time two projects trade places by a few requests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from keyward.quota.windows import require_aware, utc_clock


@dataclass(frozen=True)
class Candidate:
    """One key that could be published; `load` is its project's (None: no limit known)."""

    project_id: str
    key_id: str
    load: float | None
    exhausted_until: datetime | None
    usable: bool = True


@dataclass(frozen=True)
class Choice:
    """The key to publish (None: none can be), why, and whether it differs from the current one."""

    project_id: str | None
    key_id: str | None
    reason: str
    all_exhausted: bool
    switched: bool


def _load(c: Candidate) -> float:
    return 0.0 if c.load is None or math.isnan(c.load) else c.load


def _order(c: Candidate) -> tuple[float, str, str]:
    return (_load(c), c.project_id, c.key_id)


def _exhausted(c: Candidate, now: datetime) -> bool:
    return c.exhausted_until is not None and c.exhausted_until > now


def _pct(c: Candidate) -> str:
    if c.load is None or math.isnan(c.load):
        return "no usage limits known"
    if math.isinf(c.load):
        return "no quota for the model"
    return f"{c.load * 100:.0f}%"



def _describe_best(best: Candidate, live: list[Candidate]) -> str:
    others = [c for c in live if c is not best]
    if not others:
        return f"only available key: {best.project_id} ({_pct(best)})"
    runner = min(others, key=_order)
    return f"least loaded: {best.project_id} {_pct(best)} vs {_pct(runner)} for {runner.project_id}"


def choose(
    candidates: Sequence[Candidate],
    current_key_id: str | None,
    now: datetime,
    margin: float,
) -> Choice:
    """Return the key to publish at `now`.

    Unusable candidates are never chosen. A candidate is exhausted while its
    `exhausted_until` is after `now`. Among the rest the least load wins (None counts as 0),
    ties broken by (load, project_id, key_id). The current key is kept while it is usable,
    not exhausted and its load is at most the best load + `margin`. When every usable
    candidate is exhausted, the one that frees up first is chosen (then least load) and
    `all_exhausted` is set. `switched` is True whenever the chosen key differs from
    `current_key_id`. Raise ValueError if `margin` is negative or NaN.
    """
    now = require_aware(now)
    if not margin >= 0:
        raise ValueError("margin must be a non-negative fraction, e.g. 0.1 for 10 points")
    usable = [c for c in candidates if c.usable]
    if not usable:
        why = "no active key in the pool" if not candidates else "no usable key in the pool"
        return Choice(None, None, why, all_exhausted=False, switched=current_key_id is not None)

    current_any = next((c for c in candidates if c.key_id == current_key_id), None)
    current = next((c for c in usable if c.key_id == current_key_id), None)
    live = [c for c in usable if not _exhausted(c, now)]

    if not live:
        first = min(usable, key=lambda c: (c.exhausted_until, *_order(c)))
        if current is not None and current.exhausted_until <= first.exhausted_until:
            first = current  # frees up as early as any other: no reason to move
        reason = (f"all keys exhausted; {first.project_id} frees up first at "
                  f"{utc_clock(first.exhausted_until, now)}")
        return Choice(first.project_id, first.key_id, reason, all_exhausted=True,
                      switched=first.key_id != current_key_id)

    best = min(live, key=_order)
    if current is not None and not _exhausted(current, now):
        if current is best or _order(current) == _order(best):
            return Choice(current.project_id, current.key_id, "kept: " + _describe_best(current, live),
                          all_exhausted=False, switched=False)
        # The epsilon keeps "exactly at the margin" on the keep side despite float sums.
        if _load(current) <= _load(best) + margin + 1e-9:
            reason = (f"kept: within margin ({_pct(current)} vs {_pct(best)} + "
                      f"{margin * 100:.0f}% for {best.project_id})")
            return Choice(current.project_id, current.key_id, reason, all_exhausted=False,
                          switched=False)

    if current_key_id is None:
        why = _describe_best(best, live)
    elif current_any is None:
        why = (f"switched: current key {current_key_id} is no longer in the pool; "
               + _describe_best(best, live))
    elif current is None:
        why = f"switched: current key {current_key_id} is not usable; " + _describe_best(best, live)
    elif _exhausted(current, now):
        why = (f"switched: {current.project_id} exhausted until "
               f"{utc_clock(current.exhausted_until, now)}; " + _describe_best(best, live))
    else:
        why = (f"switched: {current.project_id} at {_pct(current)} exceeds {best.project_id} at "
               f"{_pct(best)} + {margin * 100:.0f}% margin")
    return Choice(best.project_id, best.key_id, why, all_exhausted=False,
                  switched=best.key_id != current_key_id)
