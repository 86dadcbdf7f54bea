"""Turn a pool's active keys and its projects' loads into selection candidates (pure).

Quota belongs to the project, so each project offers one key: its newest active key, plus the
pool's current key when that is another active key of the same project (so a second active key
never makes the published one move). A key without a stored secret cannot be published and is
offered as unusable.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class LoadFacts:
    """What selection needs of a project's load for the pool's model."""

    load: float | None
    exhausted_until: datetime | None


def build_candidates(
    offers: Iterable[KeyOffer],
    loads: Mapping[str, LoadFacts],
    current_key_id: str | None,
) -> list[Candidate]:
    """Return one candidate per project (two when the current key is a second active key).

    Keys whose state is not `active` (e.g. `invalid`) and keys without a secret are unusable. A
    project with no load facts counts as unloaded (load None), like a project without known limits.
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
            usable=offer.has_secret and offer.state == "active",
        ))
    return out
