from __future__ import annotations

from pathlib import Path

from keyward import inventory
from keyward.config import load_config
from keyward.context import Context
from keyward.storage import store as q
from support.fakes import fake_auth_key


def _ctx(tmp_path: Path, text: str) -> Context:
    path = tmp_path / "keyward.toml"
    path.write_text(text)
    env = {"KEYWARD_STATE_DIR": str(tmp_path / "state"), "KEYWARD_RUNTIME_DIR": str(tmp_path / "run")}
    return Context(load_config(path, env=env))


TWO = """
[pools.main]
model = "gemini-2.5-pro"

[projects.alpha-project-1]
pool = "main"
number = "11"

[projects.alpha-project-1.limits."gemini-2.5-pro"]
rpm = 5

[projects.bravo-project-2]
pool = "main"
"""


def test_sync_when_config_declares_projects_puts_them_and_limits_in_database(tmp_path):
    with _ctx(tmp_path, TWO) as ctx, ctx.store.read() as s:
        projects = {p.project_id: p for p in q.list_projects(s)}
        assert set(projects) == {"alpha-project-1", "bravo-project-2"}
        alpha = projects["alpha-project-1"]
        assert alpha.origin == "config" and alpha.pool.name == "main" and alpha.number == "11"
        assert [(lim.model, lim.rpm, lim.source) for lim in alpha.limits] == [("gemini-2.5-pro", 5, "config")]


def test_sync_when_project_leaves_config_forgets_it(tmp_path):
    with _ctx(tmp_path, TWO) as ctx:
        ctx.store
    with _ctx(tmp_path, TWO.split("[projects.bravo-project-2]")[0]) as ctx, ctx.store.read() as s:
        assert [p.project_id for p in q.list_projects(s)] == ["alpha-project-1"]


def test_sync_when_departed_project_has_keys_keyward_created_keeps_it_and_warns(tmp_path):
    with _ctx(tmp_path, TWO) as ctx, ctx.store.write() as s:
        project = q.get_project(s, "bravo-project-2")
        q.add_key(s, project, key_id="kw-1", secret=fake_auth_key(), kind="auth", state="active", origin="keyward")
    with _ctx(tmp_path, TWO.split("[projects.bravo-project-2]")[0]) as ctx, ctx.store.read() as s:
        kept = q.get_project(s, "bravo-project-2")
        assert kept.origin == "cli"
        events = q.recent_events(s, 5, project="bravo-project-2")
        assert any(e.kind == "project.undeclared" and e.level == "warning" for e in events)


def test_sync_when_config_unchanged_does_not_write(tmp_path):
    with _ctx(tmp_path, TWO) as ctx, ctx.store.read() as s:
        first = q.get_meta(s, inventory.CONFIG_DIGEST).updated_at
    with _ctx(tmp_path, TWO) as ctx, ctx.store.read() as s:
        assert q.get_meta(s, inventory.CONFIG_DIGEST).updated_at == first
