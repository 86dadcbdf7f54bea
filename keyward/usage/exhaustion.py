"""Clearing exhaustion by hand: when a report was wrong (a forged or garbled 429), the operator
puts the projects back in use at once instead of waiting for the window to end. Journaled, and
the pools are republished so the cleared projects compete for selection again."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keyward.errors import UsageError
from keyward.usage import effects as fx

if TYPE_CHECKING:
    from keyward.context import Context


def clear_exhaustion(ctx: "Context", *, projects: list[str] | None = None, pool: str | None = None,
                     everything: bool = False) -> list[tuple[str, str, str]]:
    """Clear live exhaustion of the named projects, of a pool's projects, or (everything) of all;
    return (project id, model, pool) per row cleared. Raise NotFound for an unknown name."""
    from keyward.storage import store as q
    from keyward.storage import usage_queries as uq

    if not (projects or pool or everything):
        raise UsageError("name --project, --pool or --all")
    now = ctx.now()
    with ctx.store.write() as s:
        pks: list[int] | None = None
        if not everything:
            pks = []
            for project_id in projects or ():
                pks.append(q.get_project(s, project_id).id)
            if pool is not None:
                q.get_pool(s, pool)  # NotFound names an unknown pool
                pks += [p.id for p in q.list_projects(s, pool=pool)]
        cleared = uq.clear_exhaustion(s, pks, now)
        for project_id, model, pool_name in cleared:
            q.journal(s, "quota.cleared", f"exhaustion of {model} cleared by the operator",
                      level="warning", project=project_id, pool=pool_name or None, now=now)
    effects = fx.Effects()
    for _pid, _model, pool_name in cleared:
        if pool_name:
            effects.republish(pool_name, "cleared")
    if effects:
        fx.run(ctx, effects)
    return cleared

