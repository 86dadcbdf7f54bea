"""A small world for publishing and status tests: a config on disk, a Context on a fake clock,
keys added through the inventory and usage written through the usage queries."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from keyward import inventory
from keyward.config import load_config
from keyward.context import Context
from keyward.quota.windows import minute_floor, pacific_date
from keyward.storage import store as q
from keyward.storage import usage_queries as uq
from support.fakes import fake_auth_key

MODEL = "gemini-2.5-flash"
START = datetime(2026, 3, 10, 18, 0, 30, tzinfo=timezone.utc)


class Clock:
    def __init__(self, now: datetime = START):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def config_text(tmp_path: Path, *, projects: dict[str, int] | None = None, margin: float = 0.1,
                sinks: str | None = None, extra: str = "") -> str:
    """TOML for pool "main" with the given projects (id → rpm limit, rpd 1000)."""
    sinks = sinks if sinks is not None else f'''
        [[pools.main.sinks]]
        type = "file"
        path = "{tmp_path / 'keys' / 'main.key'}"

        [[pools.main.sinks]]
        type = "null"
    '''
    out = textwrap.dedent(f"""
        [pools.main]
        model = "{MODEL}"
        margin = {margin}
        {extra}
    """) + textwrap.dedent(sinks)
    for project_id, rpm in (projects or {"alpha-1": 10, "beta-2": 10}).items():
        out += textwrap.dedent(f"""
            [projects.{project_id}]
            pool = "main"

            [projects.{project_id}.limits."{MODEL}"]
            rpm = {rpm}
            rpd = 1000
        """)
    return out


@dataclass
class World:
    tmp_path: Path
    ctx: Context
    clock: Clock

    def add_key(self, project: str, secret: str | None = None) -> tuple[str, str]:
        secret = secret or fake_auth_key()
        view = inventory.add_key(self.ctx, project, secret)
        return view.key_id, secret

    def use(self, project: str, requests: int, *, tokens: int = 0, at: datetime | None = None) -> None:
        at = at or self.clock.now
        with self.ctx.store.write() as s:
            pk = q.get_project(s, project).id
            uq.add_local(s, pk, MODEL, minute_floor(at), pacific_date(at), (requests, tokens, 0))

    def exhaust(self, project: str, until: datetime, scope: str = "minute") -> None:
        with self.ctx.store.write() as s:
            pk = q.get_project(s, project).id
            uq.set_exhaustion(s, pk, MODEL, until=until, scope=scope, quota_ids="", now=self.clock.now)

    def pool(self, name: str = "main"):
        with self.ctx.store.read() as s:
            return q.get_pool(s, name)

    def events(self, kind: str | None = None):
        with self.ctx.store.read() as s:
            events = list(reversed(q.recent_events(s, 500)))
        return [e for e in events if kind is None or e.kind == kind]


def make_world(tmp_path: Path, text: str | None = None, clock: Clock | None = None, *,
               db_url: str | None = None, **kwargs) -> World:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "keyward.toml"
    path.write_text(text if text is not None else config_text(tmp_path, **kwargs), encoding="utf-8")
    env = {"HOME": str(tmp_path / "home"), "KEYWARD_STATE_DIR": str(tmp_path / "state"),
           "KEYWARD_RUNTIME_DIR": str(tmp_path / "run")}
    if db_url:
        env["KEYWARD_DATABASE_URL"] = db_url
    clock = clock or Clock()
    return World(tmp_path, Context(load_config(path, env=env), clock=clock, env=env), clock)
