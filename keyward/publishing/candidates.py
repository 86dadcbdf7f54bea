"""Turn a pool's active keys and its projects' loads into selection candidates (pure).

Quota belongs to the project, so each project offers one key: its newest active key, plus the
pool's current key when that is another active key of the same project (so a second active key
never makes the published one move). A key without a stored secret cannot be published and is
offered as unusable, and so is a standard (AIza) key: Gemini has rejected those since September
2026, so publishing one would hand every reader a key that fails on each call.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from keyward.quota.selection import Candidate


@dataclass(frozen=True)
class KeyOffer:
    """An active key of the pool, in the order the store lists them (newest first per project)."""

    project_id: str
    key_id: str
    has_secret: bool
    state: str = "active"
    kind: str = "auth"


@dataclass(frozen=True)
class LoadFacts:
    """What selection needs of a project's load for the pool's model."""

    load: float | None
    exhausted_until: datetime | None


def publishable(state: str, kind: str, has_secret: bool) -> bool:
    """Whether a key may be published: active, its string stored, and not a standard key."""
    return has_secret and state == "active" and kind != "standard"


def build_candidates(
    offers: Iterable[KeyOffer],
    loads: Mapping[str, LoadFacts],
    current_key_id: str | None,
) -> list[Candidate]:
    """Return one candidate per project (two when the current key is a second active key).

    Only keys `publishable` says may be published are usable. A project with no load facts counts
    as unloaded (load None), like a project without known limits.
    """
    seen: set[str] = set()
    out: list[Candidate] = []
    for offer in offers:
        first = offer.project_id not in seen
        if not first and offer.key_id != current_key_id:
            continue
        seen.add(offer.project_id)
        facts = loads.get(offer.project_id)
        load = None if facts is None else facts.load
        if load is not None and math.isnan(load):
            load = None
        out.append(Candidate(
            project_id=offer.project_id,
            key_id=offer.key_id,
            load=load,
            exhausted_until=None if facts is None else facts.exhausted_until,
            usable=publishable(offer.state, offer.kind, offer.has_secret),
        ))
    return out


@dataclass
class PoolOffers:
    """A pool's active keys kept between choices: in store order, and grouped by project."""

    offers: list[KeyOffer]
    by_project: dict[str, list[KeyOffer]]
    key_ids: dict[str, str]  # key id -> its project id
    unseen: list[tuple[float, str]] | None = None  # projects without load facts, as order entries

    def unseen_in(self, loads: Mapping[str, LoadFacts]) -> list[tuple[float, str]]:
        """Order entries (no known load counts as 0) for the projects `loads` lacks; kept with the
        offers, since the projects a book knows change only when both are read again."""
        if self.unseen is None:
            self.unseen = sorted((0.0, pid) for pid in self.by_project if pid not in loads)
        return self.unseen

    @classmethod
    def of(cls, offers: list[KeyOffer]) -> "PoolOffers":
        by_project: dict[str, list[KeyOffer]] = {}
        for offer in offers:
            by_project.setdefault(offer.project_id, []).append(offer)
        return cls(offers, by_project, {o.key_id: o.project_id for o in offers})


def top_candidates(
    order: Iterable[tuple[float, str]],
    loads: Mapping[str, LoadFacts],
    offers: PoolOffers,
    current_key_id: str | None,
    now: datetime,
) -> list[Candidate] | None:
    """Return the candidates `choose()` decides on, read from the top of the load order.

    That is every candidate of the two least-loaded projects with a usable, unexhausted key, of
    projects not in the order yet (unknown load counts as none), and of the current key's project:
    choose() picks the best and names the runner-up from these exactly as from all of them. Return
    None when fewer than one such project is found (all exhausted, or none usable): then choose()
    needs every candidate.
    """
    # Projects the order has not seen yet have no known load, which counts as 0: walk them in place.
    unseen = offers.unseen_in(loads)
    picked: list[str] = []
    live = 0

    def is_live(pid: str) -> bool:
        facts = loads.get(pid)
        if facts is not None and facts.exhausted_until is not None and facts.exhausted_until > now:
            return False
        # Only the keys build_candidates offers count: the newest of the project, and the current one.
        return any(c.usable for c in build_candidates(offers.by_project[pid], loads, current_key_id))

    for _key, pid in heapq.merge(unseen, order):
        if live >= 2:
            break
        if pid in offers.by_project and is_live(pid):
            picked.append(pid)
            live += 1
    if live == 0:
        return None
    current = offers.key_ids.get(current_key_id) if current_key_id else None
    if current is not None and current not in picked:
        picked.append(current)
    return build_candidates([o for pid in picked for o in offers.by_project[pid]], loads, current_key_id)
