"""Which projects a Monitoring poll can read through a metrics scope, and over which window.

An operator who has put their projects into the metrics scopes of a few scoping projects lists
those in `usage.metrics_scopes`. A scope monitors up to 375 projects and `timeSeries.list` on its
scoping project returns every member's series, so a poll costs two reads (plus pages) per scope
instead of two per project. The answer only holds projects that had traffic, so membership comes
from the Metrics Scopes API: a member with no series read zero, it was not skipped. A project
that no listed scope claims (not a member, or its number unknown to keyward) is polled on its own.

Each project keeps its own window (from where its previous poll stopped); a scope is read over
the union of its members' windows, and each member then keeps only the minutes of its own. A
long union window (the first poll reads from the start of the Pacific day) is read in slices of
`SLICE`, so the answer held in memory stays an hour of 375 projects at most, not a day of them.
Everything here is pure: plain data in, plain data out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from keyward.google.metrics_scopes import MetricsScope

SLICE = timedelta(hours=1)


@dataclass(frozen=True)
class Target:
    """One project to poll: its row, id, number (None when the config gives none) and model."""

    pk: int
    project_id: str
    number: str | None
    model: str


def claims(scope: MetricsScope, target: Target) -> bool:
    """Whether `scope` monitors `target`: it is the scoping project itself, or a member."""
    if target.project_id == scope.scope or (target.number is not None
                                            and target.number in (scope.scope, scope.number)):
        return True
    return target.number is not None and target.number in scope.members


def assign(targets: list[Target],
           scopes: list[MetricsScope]) -> tuple[dict[str, list[Target]], list[Target]]:
    """Give each target to the first scope (in `scopes` order) that monitors it.

    Return (scoping project → its targets, only scopes with at least one; the targets no scope
    claims, in their given order). A project in several scopes is read once, from the first.
    """
    by_scope: dict[str, list[Target]] = {}
    alone: list[Target] = []
    for target in targets:
        owner = next((s for s in scopes if claims(s, target)), None)
        if owner is None:
            alone.append(target)
        else:
            by_scope.setdefault(owner.scope, []).append(target)
    return by_scope, alone


def union_window(starts: dict[str, datetime], end: datetime) -> tuple[datetime, datetime]:
    """The window a scope is read over: from its members' earliest start to the common end."""
    return min(starts.values()), end


def slices(start: datetime, end: datetime, length: timedelta = SLICE) -> list[tuple[datetime, datetime]]:
    """Cut [start, end) into consecutive windows of at most `length`, the last ending at `end`."""
    out: list[tuple[datetime, datetime]] = []
    while start < end:
        out.append((start, min(start + length, end)))
        start = out[-1][1]
    return out
