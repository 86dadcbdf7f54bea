"""Second opinions on keys Gemini rejected while in use.

A key is taken out at once when Gemini answers API_KEY_INVALID or a suspension, because a rejected
key in the published slot fails every reader. Such verdicts can be wrong for a moment (an API
briefly disabled, a restriction being edited), so the daemon asks Gemini again, first after
`daemon.verify_invalid` and then at doubling intervals (at most a day apart), so a key that stays
dead costs a handful of calls, not one per timer tick. A key that works again goes back into
service instead of waiting for a rotation that an unmanaged project will never get.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from keyward.storage import store as q
from keyward.storage.models import ACTIVE, INVALID

if TYPE_CHECKING:
    from keyward.context import Context

log = logging.getLogger(__name__)

MAX_INTERVAL = timedelta(days=1)


def _meta_name(key_id: str) -> str:
    return f"recheck.{key_id}"


def next_check(invalid_at: datetime, checks: int, last: datetime | None, base: timedelta) -> datetime:
    """When to ask Gemini again: `base` after the rejection, then 2x, 4x … (capped) after each check."""
    if last is None:
        return invalid_at + base
    return last + min(base * (2 ** checks), MAX_INTERVAL)


def recheck_invalid(ctx: "Context") -> list[str]:
    """Verify the invalid keys whose next check is due; reinstate those that work. Return their ids."""
    from keyward.google.gemini import verify_key

    now = ctx.now()
    base = ctx.config.daemon.verify_invalid
    due = []
    with ctx.store.read() as s:
        for k in q.list_keys(s):
            if k.state != INVALID or not k.secret or k.replaced_by:
                continue
            meta = q.get_meta(s, _meta_name(k.key_id))
            record = json.loads(meta.value) if meta else {"checks": 0, "last": None}
            last = datetime.fromisoformat(record["last"]) if record["last"] else None
            if now >= next_check(k.invalid_at or now, record["checks"], last, base):
                due.append((k.key_id, k.secret, k.project.project_id, k.project.pool.name, record["checks"]))
    reinstated: list[str] = []
    for key_id, secret, project_id, pool, checks in due:
        verdict = verify_key(secret)
        extra = {"project": project_id, "key_id": key_id, "pool": pool}
        with ctx.store.write() as s:
            key = q.get_key(s, key_id)
            if key.state != INVALID:
                continue
            if not verdict.ok:
                q.set_meta(s, _meta_name(key_id), json.dumps({"checks": checks + 1, "last": now.isoformat()}),
                           now=now)
                log.info("key still rejected (%s)", verdict.kind, extra=extra)
                continue
            key.state, key.invalid_reason, key.invalid_at = ACTIVE, None, None
            q.set_meta(s, _meta_name(key_id), json.dumps({"checks": 0, "last": None}), now=now)
            q.journal(s, "key.reinstated", "Gemini accepts the key again; back in service",
                      project=project_id, key_id=key_id, pool=pool, level="warning", now=now)
        log.warning("key accepted again; back in service", extra=extra)
        reinstated.append(key_id)
        from keyward.publishing.service import publish_pools

        publish_pools(ctx, [pool], trigger="reinstated")
    return reinstated
