"""A small keyward world for the usage tests: a config with one pool of projects, keys in the
database (with Google uids), and a Context on a clock the test controls."""

from __future__ import annotations

import secrets
import sys
import types
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from keyward.config import load_config
from keyward.context import Context
from keyward.storage import store as q
from support.fakes import fake_auth_key

MODEL = "gemini-2.5-flash"
POOL = "main"


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    ctx: Context
    config_path: Path
    env: dict[str, str]
    clock: Clock
    keys: dict[str, str] = field(default_factory=dict)  # project id → key id
    secrets: dict[str, str] = field(default_factory=dict)  # project id → key string
    uids: dict[str, str] = field(default_factory=dict)  # project id → Google uid

    def project_pk(self, project_id: str) -> int:
        with self.ctx.store.read() as s:
            return q.get_project(s, project_id).id


def write_config(tmp_path: Path, projects: dict[str, dict | None], *, db_url: str,
                 extra: str = "", numbers: dict[str, str] | None = None) -> tuple[Path, dict[str, str]]:
    lines = [f'database = "{db_url}"', extra, f"[pools.{POOL}]", f'model = "{MODEL}"',
             f"[[pools.{POOL}.sinks]]", 'type = "null"']
    for project_id, limits in projects.items():
        lines += [f"[projects.{project_id}]", f'pool = "{POOL}"']
        if numbers and project_id in numbers:
            lines.append(f'number = "{numbers[project_id]}"')
        if limits:
            lines.append(f'[projects.{project_id}.limits."{MODEL}"]')
            lines += [f"{name} = {value}" for name, value in limits.items()]
    path = tmp_path / "keyward.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {"KEYWARD_STATE_DIR": str(tmp_path / "state"), "KEYWARD_RUNTIME_DIR": str(tmp_path / "run"),
           "HOME": str(tmp_path / "home")}
    return path, env


def make_world(tmp_path: Path, db_url: str, projects: dict[str, dict | None], *,
               now: datetime | None = None, extra: str = "", managed: tuple[str, ...] = (),
               clock=None, given_keys: dict[str, tuple[str, str]] | None = None,
               numbers: dict[str, str] | None = None) -> World:
    """Build the world; each project gets one active auth key (or `given_keys[p]` = (key string,
    Google uid)); the first project's key is the pool's current key."""
    path, env = write_config(tmp_path, projects, db_url=db_url, extra=extra, numbers=numbers)
    clock = clock or Clock(now or datetime(2026, 3, 4, 18, 30, 15, tzinfo=timezone.utc))
    ctx = Context(load_config(path, env=env), clock=clock, env=env)
    world = World(ctx, path, env, clock)
    with ctx.store.write() as s:
        for project_id in projects:
            project = q.get_project(s, project_id)
            project.managed = project_id in managed
            secret, uid = (given_keys or {}).get(project_id) or (fake_auth_key(), secrets.token_hex(8))
            key = q.add_key(s, project, key_id=f"k-{project_id}", secret=secret, kind="auth",
                            state="active", origin="manual", now=clock(), promoted_at=clock(),
                            google_uid=uid)
            world.keys[project_id], world.secrets[project_id] = key.key_id, secret
            world.uids[project_id] = uid
        pool = q.get_pool(s, POOL)
        pool.current_key_id = world.keys[next(iter(projects))]
    return world


class Recorded:
    """Stands in for the publishing and rotation services and records what they were asked."""

    def __init__(self):
        self.published: list[tuple[tuple[str, ...], str]] = []
        self.replaced: list[str] = []


def fake_services(monkeypatch) -> Recorded:
    rec = Recorded()
    publishing = types.ModuleType("keyward.publishing.service")
    publishing.publish_pools = lambda ctx, pools=None, *, trigger: rec.published.append(
        (tuple(pools or ()), trigger)) or []
    rotation = types.ModuleType("keyward.rotation.service")
    rotation.replace_invalid = lambda ctx, key_id: rec.replaced.append(key_id)
    monkeypatch.setitem(sys.modules, "keyward.publishing.service", publishing)
    monkeypatch.setitem(sys.modules, "keyward.rotation.service", rotation)
    return rec
