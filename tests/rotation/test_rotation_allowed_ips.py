"""allowed_ips that leave out keyward's own host: every new key fails verification, and says why."""

from __future__ import annotations

import pytest

from keyward.errors import RotationError
from keyward.rotation import service
from keyward.storage import store as q


def test_rotate_project_when_allowed_ips_exclude_keywards_host_error_names_allowed_ips(make_ctx, emu, deps):
    ctx = make_ctx(extra="")
    with ctx.store.write() as s:  # the project's keys only work from an address keyward is not at
        q.get_project(s, "beta-proj").allowed_ips = "203.0.113.0/24"

    with pytest.raises(RotationError) as caught:
        service.rotate_project(ctx, "beta-proj", deps=deps)

    message = str(caught.value)
    assert "API_KEY_IP_ADDRESS_BLOCKED" in message
    assert "allowed_ips must include the address keyward runs on" in message
    with ctx.store.read() as s:
        journaled = [e.message for e in q.recent_events(s, 50) if e.project_id == "beta-proj"]
    assert any("allowed_ips must include" in m for m in journaled)
