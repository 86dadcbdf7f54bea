"""`client.state(pool)`: the published key id, all_exhausted and until when, from the state file."""

from __future__ import annotations

from datetime import timedelta

import pytest
from publishing_helpers import make_world

from keyward import client
from keyward.errors import NothingPublished
from keyward.publishing.service import publish_pools


@pytest.fixture
def world(tmp_path):
    w = make_world(tmp_path)
    yield w
    w.ctx.close()


def _state(world):
    return client.state("main", config_path=str(world.tmp_path / "keyward.toml"), env=world.ctx.env)


def test_state_when_all_exhausted_says_which_key_and_until_when(world):
    world.add_key("alpha-1")
    b_id, _ = world.add_key("beta-2")
    until_b = world.clock.now + timedelta(minutes=1)
    world.exhaust("alpha-1", world.clock.now + timedelta(hours=2))
    world.exhaust("beta-2", until_b)
    publish_pools(world.ctx, trigger="quota")
    state = _state(world)
    assert state.key_id == b_id and state.project_id == "beta-2" and state.all_exhausted
    assert state.exhausted_until == until_b
    assert state.seconds_until_available(world.clock.now) == pytest.approx(60)
    assert state.masked.startswith("AQ.…") and state.published


def test_state_when_quota_left_has_no_until(world):
    a_id, _ = world.add_key("alpha-1")
    publish_pools(world.ctx, trigger="timer")
    state = _state(world)
    assert state.key_id == a_id and not state.all_exhausted and state.exhausted_until is None
    assert state.seconds_until_available() == 0.0


def test_state_when_nothing_published_raises_nothing_published(world):
    with pytest.raises(NothingPublished, match="main"):
        _state(world)
