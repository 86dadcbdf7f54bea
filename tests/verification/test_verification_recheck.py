from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from keyward import inventory
from keyward.config import load_config
from keyward.context import Context
from keyward.storage import store as q
from keyward.verification import recheck_invalid

START = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)
CONFIG = """
[daemon]
verify_invalid = "10m"

[pools.default]
[[pools.default.sinks]]
type = "null"

[projects.alpha-project-1]
number = "111111111111"
"""


class Clock:
    def __init__(self):
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def world(tmp_path, emulated, kw_env):
    emu = emulated({"alpha-project-1": "111111111111"})
    path = tmp_path / "keyward.toml"
    path.write_text(CONFIG)
    clock = Clock()
    ctx = Context(load_config(path), clock=clock)
    yield emu, ctx, clock
    ctx.close()


def _add_invalid_key(emu, ctx) -> tuple[str, dict]:
    made = emu.create_manual_key("alpha-project-1", kind="auth",
                                 service_account="keyward@alpha-project-1.iam.gserviceaccount.com")
    view = inventory.add_key(ctx, "alpha-project-1", made["keyString"])
    with ctx.store.write() as s:
        key = q.get_key(s, view.key_id)
        key.state, key.invalid_at, key.invalid_reason = "invalid", ctx.now(), "API_KEY_INVALID"
    return view.key_id, made


def _state(ctx, key_id: str) -> str:
    with ctx.store.read() as s:
        return q.get_key(s, key_id).state


def _checks(ctx, key_id: str) -> int:
    with ctx.store.read() as s:
        meta = q.get_meta(s, f"recheck.{key_id}")
        return json.loads(meta.value)["checks"] if meta else 0


def test_recheck_when_key_works_again_reinstates_it_after_the_first_interval(world):
    emu, ctx, clock = world
    key_id, _ = _add_invalid_key(emu, ctx)
    assert recheck_invalid(ctx) == [] and _state(ctx, key_id) == "invalid"  # too early
    clock.now += timedelta(minutes=10)
    assert recheck_invalid(ctx) == [key_id]
    assert _state(ctx, key_id) == "active"
    with ctx.store.read() as s:
        assert any(e.kind == "key.reinstated" for e in q.recent_events(s, 10))
        assert q.get_pool(s, "default").current_key_id == key_id  # republished at once


def test_recheck_when_key_stays_rejected_backs_off_doubling(world):
    emu, ctx, clock = world
    key_id, made = _add_invalid_key(emu, ctx)
    emu_key = next(k for k in emu.keys("alpha-project-1") if k["uid"] == made["uid"])
    from keyward.google.apikeys import ApiKeysClient

    ApiKeysClient().delete_key(emu_key["name"])  # really dead now
    clock.now += timedelta(minutes=10)
    assert recheck_invalid(ctx) == [] and _checks(ctx, key_id) == 1
    clock.now += timedelta(minutes=15)  # less than 2 x 10m since the last check
    recheck_invalid(ctx)
    assert _checks(ctx, key_id) == 1
    clock.now += timedelta(minutes=5)  # now 20m since the last check
    recheck_invalid(ctx)
    assert _checks(ctx, key_id) == 2 and _state(ctx, key_id) == "invalid"
