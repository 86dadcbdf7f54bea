"""Quota limits Google applies, for projects whose limits the operator did not write down.

The config's limits are the operator's word and are already synced (source "config"). For every
other project, Service Usage v1beta1 tells the limits per model; they are stored with source
"google" (never over a config limit) and status shows where each limit came from.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from keyward.errors import KeywardError
from keyward.storage import store as q
from keyward.storage import usage_queries as uq

if TYPE_CHECKING:
    from keyward.context import Context

log = logging.getLogger(__name__)


def _client(ctx: "Context") -> Any:
    from keyward.google.auth import load_credentials
    from keyward.google.serviceusage import ServiceUsageClient

    creds = load_credentials(ctx.config.google.credentials,
                             quota_project=ctx.config.google.quota_project)
    return ServiceUsageClient(creds, retry_budget=ctx.config.rotation.retry_budget.total_seconds())


def refresh_limits(ctx: "Context", *, client: Any = None) -> dict[str, str]:
    """Ask Google for the limits of every project lacking config limits for its pool's model.

    Return {project id: what happened}. One project's failure is logged and the pass goes on;
    the failures are in the returned dict ("failed: …").
    """
    with ctx.store.read() as s:
        todo = [(pk, pid, model) for pk, pid, _pool, model in uq.projects_with_pools(s)
                if not uq.has_limit(s, pk, model, "config")]
    outcome: dict[str, str] = {}
    if not todo:
        return outcome
    client = client or _client(ctx)
    for _pk, project_id, model in todo:
        try:
            found = client.gemini_limits(project_id)
        except KeywardError as exc:
            log.warning("reading Gemini limits of project %s failed: %s", project_id, exc)
            outcome[project_id] = f"failed: {exc}"
            continue
        with ctx.store.write() as s:
            project = q.get_project(s, project_id)
            q.clear_limits(s, project, "google")
            for limit_model, values in found.items():
                q.set_limit(s, project, limit_model, rpm=values.get("rpm"), tpm=values.get("tpm"),
                            rpd=values.get("rpd"), source="google")
        has = model in found or uq.ALL_MODELS in found
        outcome[project_id] = "ok" if has else f"ok (Google lists no limit for {model})"
    return outcome
