"""Second opinions on keys Gemini rejected while in use.

A key is taken out at once when Gemini answers API_KEY_INVALID or a suspension, because a rejected
key in the published slot fails every reader. Such verdicts can be wrong for a moment (an API
briefly disabled, a restriction being edited), so the daemon asks Gemini again every
`daemon.verify_invalid`; a key that now works goes back into service instead of waiting for a
rotation that an unmanaged project will never get.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from keyward.storage import store as q
from keyward.storage.models import ACTIVE, INVALID

if TYPE_CHECKING:
    from keyward.context import Context

log = logging.getLogger(__name__)


def recheck_invalid(ctx: "Context") -> list[str]:
    """Verify every invalid key that is not yet replaced; reinstate those that work. Return their ids."""
    from keyward.google.gemini import verify_key

    with ctx.store.read() as s:
        candidates = [(k.key_id, k.secret, k.project.project_id, k.project.pool.name)
                      for k in q.list_keys(s) if k.state == INVALID and k.secret and not k.replaced_by]
    reinstated: list[str] = []
    for key_id, secret, project_id, pool in candidates:
        verdict = verify_key(secret)
        extra = {"project": project_id, "key_id": key_id, "pool": pool}
        if not verdict.ok:
            log.info("key still rejected (%s)", verdict.kind, extra=extra)
            continue
        with ctx.store.write() as s:
            key = q.get_key(s, key_id)
            if key.state != INVALID:
                continue
            key.state, key.invalid_reason = ACTIVE, None
            q.journal(s, "key.reinstated", "Gemini accepts the key again; back in service",
                      project=project_id, key_id=key_id, pool=pool, level="warning", now=ctx.now())
        log.warning("key accepted again; back in service", extra=extra)
        reinstated.append(key_id)
        from keyward.publishing.service import publish_pools

        publish_pools(ctx, [pool], trigger="reinstated")
    return reinstated
