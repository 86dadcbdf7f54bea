"""Standard (AIza) keys are never published: Gemini rejects them, so a reader handed one would fail on
every call. Checked on both ways of choosing, from the database (the CLI) and from kept loads (the
daemon)."""

from __future__ import annotations

import pytest

from keyward.publishing.service import publish_pools
from keyward.sinks.file import read_published_file
from keyward.storage import store as q
from support.fakes import fake_standard_key


@pytest.fixture
def world(world_both_ways):
    return world_both_ways


def _key_file(world):
    return read_published_file(world.tmp_path / "keys" / "main.key")


def test_publish_when_the_least_loaded_project_holds_only_a_standard_key_picks_an_auth_key(world):
    world.add_key("alpha-1", fake_standard_key())  # alpha is unloaded and first by id
    b_id, b_secret = world.add_key("beta-2")
    world.use("beta-2", 8)  # 80 %: far beyond any margin
    [result] = publish_pools(world.ctx, trigger="timer")
    assert (result.key_id, result.project_id) == (b_id, "beta-2")
    assert _key_file(world) == b_secret


def test_publish_when_a_project_has_a_newer_standard_key_offers_its_auth_key(world):
    a_id, a_secret = world.add_key("alpha-1")
    world.clock.advance(minutes=1)
    world.add_key("alpha-1", fake_standard_key())  # newer, active, and still never published
    world.use("beta-2", 0)
    [result] = publish_pools(world.ctx, trigger="timer")
    assert result.key_id == a_id and _key_file(world) == a_secret


def test_publish_when_only_standard_keys_publishes_nothing_and_journals_why(world):
    world.add_key("alpha-1", fake_standard_key())
    world.add_key("beta-2", fake_standard_key())
    [result] = publish_pools(world.ctx, trigger="timer")
    assert result.key_id is None and _key_file(world) is None
    [event] = world.events("selection.no_key")
    assert event.level == "error" and "no usable key" in event.message


def test_publish_when_the_published_key_is_standard_moves_to_the_first_auth_key(world):
    """A database from before this rule may have a standard key published: the next pass leaves it."""
    s_id, s_secret = world.add_key("alpha-1", fake_standard_key())
    with world.ctx.store.write() as s:
        pool = q.get_pool(s, "main")
        pool.current_key_id = pool.published_key_id = s_id
    b_id, b_secret = world.add_key("beta-2")
    [result] = publish_pools(world.ctx, trigger="timer")
    assert result.key_id == b_id and result.switched and f"current key {s_id} is not usable" in result.reason
    assert _key_file(world) == b_secret
