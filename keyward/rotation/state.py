"""The rotation state machine as pure functions: given what the journal says and what was observed,
return what to do next. No I/O here, so every transition is testable on plain data.

A rotation row walks these steps, each written (and committed) before the next Google call:

    planned ─▶ creating ─▶ created ─▶ verified ─▶ promoted ─▶ done
                               │
                               └──▶ failed   (verification rejected the key: deleted at Google)

`planned` is written before Google is asked for anything and carries the keyId keyward will ask
for, so a key Google created just before a crash is found again by that id instead of orphaned.
Every step's database write is conditional on the row still being at the step before it
(compare-and-set), so two runners resuming the same row cannot both promote.

`failed` is written only when the new key is known deleted at Google or was never created (the
create call or its operation refused it for another reason than ALREADY_EXISTS); anything
inconclusive leaves the row open for the next run, which finds or adopts the key by its id.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

PLANNED, CREATING, CREATED, VERIFIED, PROMOTED, DONE, FAILED = (
    "planned", "creating", "created", "verified", "promoted", "done", "failed",
)

# The step a row must be at for the move to `step` to be allowed (the compare in compare-and-set).
REQUIRES: dict[str, tuple[str, ...]] = {
    CREATING: (PLANNED, CREATING),  # CREATING again records a new operation
    CREATED: (PLANNED, CREATING),
    VERIFIED: (CREATED,),
    PROMOTED: (VERIFIED,),
    DONE: (PROMOTED,),
    FAILED: (PLANNED, CREATING, CREATED, VERIFIED),
}

# Rotation reasons (the `reason` column).
DUE, FORCED, MIGRATE, INVALID, INITIAL = "due", "forced", "migrate", "invalid", "initial"

# Actions the service carries out.
USE_EXISTING = "use_existing"      # the key is at Google already: read it and store it
CREATE = "create"                  # ask Google to create the key (start_create, then wait)
WAIT = "wait"                      # an operation is journaled: wait for it
RESTART_CREATE = "restart_create"  # the key id was deleted at Google: this attempt cannot go on
VERIFY = "verify"
SKIP_VERIFY = "skip_verify"
PROMOTE = "promote"
PUBLISH = "publish"
DISCARD = "discard"                # delete the new key at Google and mark it failed
RETRY_LATER = "retry_later"        # inconclusive: leave the row open for the next run
NOTHING = "nothing"


@dataclass(frozen=True)
class AtGoogle:
    """What a look-up of the rotation's keyId at Google found."""

    exists: bool
    deleted: bool = False


def create_action(step: str, found: AtGoogle, operation: str | None) -> str:
    """Return how to obtain the new key while the row is `planned` or `creating`.

    A live key under our keyId is always used as is (a crash after Google made it); a deleted one
    means this attempt is spoilt (keyIds are not reused while Google keeps deleted keys).
    """
    if step not in (PLANNED, CREATING):
        raise ValueError(f"create_action at step {step!r}")
    if found.exists and not found.deleted:
        return USE_EXISTING
    if found.exists and found.deleted:
        return RESTART_CREATE
    if step == CREATING and operation:
        return WAIT
    return CREATE


def next_action(step: str, *, verify_enabled: bool, verification: str | None = None) -> str:
    """Return the action for a row past creation.

    `verification` is the Verification.kind of a live call with the new key when one was made:
    "ok" and "quota" (a 429 proves the key works) promote; "transient" retries later; anything
    else discards the key.
    """
    if step == CREATED:
        if not verify_enabled:
            return SKIP_VERIFY
        if verification is None:
            return VERIFY
        if verification in ("ok", "quota"):
            return SKIP_VERIFY  # i.e. record it as verified
        if verification == "transient":
            return RETRY_LATER
        return DISCARD
    if step == VERIFIED:
        return PROMOTE
    if step == PROMOTED:
        return PUBLISH
    return NOTHING


def may_move(current: str, target: str) -> bool:
    """Return whether a row at `current` may be moved to `target`."""
    return current in REQUIRES.get(target, ())


@dataclass(frozen=True)
class ActiveKey:
    """The facts about a project's active key that decide whether it is due."""

    key_id: str
    kind: str
    rotate_after: datetime | None


def due_reason(active: ActiveKey | None, now: datetime, *, force: bool = False,
               invalid_key: bool = False) -> str | None:
    """Return why a managed project should rotate now, or None when it need not.

    No active key: "invalid" when the last one was rejected, else "initial". A standard key is
    due at once ("migrate"): Gemini stops accepting them. Otherwise "due" once rotate_after has
    passed, and "forced" when the operator asks (--now).
    """
    if active is None:
        return INVALID if invalid_key else INITIAL
    if active.kind == "standard":
        return MIGRATE
    if active.rotate_after is None or active.rotate_after <= now:
        return DUE
    return FORCED if force else None


def draw_rotate_after(now: datetime, min_age: timedelta, max_age: timedelta,
                      rng: Callable[[], float] = random.random) -> datetime:
    """Return when a key promoted at `now` falls due: uniformly in [min_age, max_age] from now.

    Drawing spreads the rotations of many projects apart instead of renewing all on one day.
    """
    low, high = sorted((min_age, max_age))
    return now + low + (high - low) * rng()


def backoff(failures: int, base: timedelta, cap: timedelta) -> timedelta:
    """Return the wait after the `failures`-th failure in a row: base, 2×base, 4×base … up to cap."""
    if failures <= 0:
        return timedelta(0)
    return min(cap, base * (2 ** min(failures - 1, 30)))


def in_backoff(backoff_until: datetime | None, now: datetime) -> bool:
    """Return True while a project must not try again after a failed rotation."""
    return backoff_until is not None and now < backoff_until


def retire_mode(origin: str, managed: bool) -> str:
    """Return "delete" when keyward deletes the key at Google, "manual" when the operator must."""
    return "delete" if origin == "keyward" and managed else "manual"
