"""Fixtures for rotation tests: one emulator per module (reset per test), a config with managed and
unmanaged projects, a Context on a movable clock, and Deps that never really sleep."""

from __future__ import annotations

import pytest

from keyward.config import load_config
from keyward.context import Context
from keyward.rotation.deps import Deps

from rotation_world import MODEL, PROJECTS, Clock, FakeSleep, config_text


@pytest.fixture
def emu(emulated, kw_env):
    """The emulator, reset, with every test project, and keyward pointed at it."""
    emu = emulated(PROJECTS, {MODEL: {"rpm": 10, "tpm": 100000, "rpd": 500}})
    emu.operation_polls = 0
    return emu


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake_sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def deps(fake_sleep) -> Deps:
    return Deps(sleep=fake_sleep, rng=lambda: 0.5)


@pytest.fixture
def make_ctx(tmp_path, clock, kw_env):
    """Build a Context from the test config (keyword arguments go to config_text)."""
    made: list[Context] = []

    def make(database_url: str | None = None, **kwargs) -> Context:
        path = tmp_path / "keyward.toml"
        path.write_text(config_text(tmp_path, **kwargs), encoding="utf-8")
        env = dict(kw_env, **({"KEYWARD_DATABASE_URL": database_url} if database_url else {}))
        ctx = Context(load_config(path, env=env), clock=clock)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()


@pytest.fixture
def ctx(make_ctx, emu):
    return make_ctx()


@pytest.fixture(autouse=True)
def published(monkeypatch):
    """Record publish_pools calls instead of publishing: these tests are about rotation; the
    publisher has its own tests, and the crash test runs the real one."""
    calls: list[tuple[list[str] | None, str]] = []

    def publish_pools(ctx, pools=None, *, trigger):
        calls.append((list(pools) if pools is not None else None, trigger))
        return []

    monkeypatch.setattr("keyward.publishing.service.publish_pools", publish_pools)
    return calls
