"""Fixtures for sealing tests: the rotation tests' world (emulator projects, config, movable clock)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROTATION_TESTS = Path(__file__).parents[1] / "rotation"
if str(ROTATION_TESTS) not in sys.path:
    sys.path.insert(0, str(ROTATION_TESTS))

from rotation_world import MODEL, PROJECTS, Clock, FakeSleep, config_text  # noqa: E402


@pytest.fixture
def emu(emulated, kw_env):
    return emulated(PROJECTS, {MODEL: {"rpm": 10, "tpm": 100000, "rpd": 500}})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def deps():
    from keyward.rotation.deps import Deps

    return Deps(sleep=FakeSleep(), rng=lambda: 0.5)


@pytest.fixture
def config_path(tmp_path, kw_env) -> Path:
    """The test config (its master key file defaults to master.key beside it)."""
    path = tmp_path / "keyward.toml"
    path.write_text(config_text(tmp_path), encoding="utf-8")
    return path


@pytest.fixture
def make_ctx(config_path, clock, kw_env):
    """Build a Context on the test config and database; each one looks for master keys afresh."""
    from keyward.config import load_config
    from keyward.context import Context

    made = []

    def make(database_url: str) -> Context:
        env = dict(kw_env, KEYWARD_DATABASE_URL=database_url)
        ctx = Context(load_config(config_path, env=env), clock=clock, env=env)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()
