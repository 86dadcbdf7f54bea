"""Fixtures for rotation tests: one emulator per module (reset per test), a config with managed and
unmanaged projects, a Context on a movable clock, and Deps that never really sleep."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from keyward.config import load_config
from keyward.context import Context
from keyward.google.endpoints import ENV_VAR
from keyward.rotation.deps import Deps

MODEL = "gemini-2.5-flash"
PROJECTS = {"alpha-proj": "111111111111", "beta-proj": "222222222222", "gamma-proj": "333333333333"}
START = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime = START):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class FakeSleep:
    def __init__(self):
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def sa(project: str) -> str:
    return f"keyward@{project}.iam.gserviceaccount.com"


def config_text(tmp_path: Path, *, unmanaged: tuple[str, ...] = ("gamma-proj",), verify: bool = True,
                extra: str = "") -> str:
    lines = [f"""
        state_dir = "{tmp_path / 'state'}"
        runtime_dir = "{tmp_path / 'run'}"

        [rotation]
        min_age = "7d"
        max_age = "15d"
        grace = "24h"
        verify = {'true' if verify else 'false'}
        retry_backoff = "1h"
        max_backoff = "8h"
        retry_budget = "20s"
        operation_timeout = "20s"

        [pools.main]
        model = "{MODEL}"
        sinks = [{{ type = "null" }}]
    """]
    for project, number in PROJECTS.items():
        managed = project not in unmanaged
        lines.append(f"""
        [projects.{project}]
        number = "{number}"
        pool = "main"
        managed = {'true' if managed else 'false'}
        """ + (f'service_account = "{sa(project)}"\n' if managed else ""))
    return textwrap.dedent("".join(lines)) + textwrap.dedent(extra)


@pytest.fixture(scope="module")
def emulator_server():
    from keyward.emulator import Emulator

    emu = Emulator().start()
    yield emu
    emu.stop()


@pytest.fixture
def emu(emulator_server, monkeypatch, kw_env):
    """The emulator, reset, with every test project, and keyward pointed at it."""
    emulator_server.reset()
    emulator_server.operation_polls = 0
    for project, number in PROJECTS.items():
        emulator_server.add_project(project, number,
                                    limits={MODEL: {"rpm": 10, "tpm": 100000, "rpd": 500}})
    monkeypatch.setenv(ENV_VAR, emulator_server.address)
    return emulator_server


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
