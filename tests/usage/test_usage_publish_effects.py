"""With the real publishing service: an exhausting 429 or an invalid key puts another project's key
in the pool's secret file before the report returns."""

from __future__ import annotations

from datetime import datetime, timezone

from usage_bodies import RPD_ID, key_invalid_400, quota_429, violation
from usage_world import POOL, make_world

from keyward.publishing.service import publish_pools
from keyward.sinks.file import read_published_file
from keyward.usage import accounting


def _world(tmp_path, sqlite_url):
    key_file = tmp_path / "run" / "main.key"
    w = make_world(tmp_path, sqlite_url, {"alpha-one": None, "beta-two": None},
                   now=datetime.now(timezone.utc))
    text = w.config_path.read_text().replace('type = "null"', f'type = "file"\npath = "{key_file}"')
    w.config_path.write_text(text)
    from keyward.config import load_config
    from keyward.context import Context

    w.ctx.close()
    w.ctx = Context(load_config(w.config_path, env=w.env), clock=w.clock, env=w.env)
    publish_pools(w.ctx, [POOL], trigger="test")
    return w, str(key_file)


def test_exhausting_429_publishes_another_projects_key_at_once(tmp_path, sqlite_url):
    w, key_file = _world(tmp_path, sqlite_url)
    before = read_published_file(key_file, "raw")
    project = next(p for p, s in w.secrets.items() if s == before)
    accounting.record_error(w.ctx, 429, quota_429(violation(RPD_ID)), key=before)
    after = read_published_file(key_file, "raw")
    other = next(p for p in w.secrets if p != project)
    assert after == w.secrets[other]
    w.ctx.close()


def test_invalid_key_publishes_another_projects_key_at_once(tmp_path, sqlite_url):
    w, key_file = _world(tmp_path, sqlite_url)
    before = read_published_file(key_file, "raw")
    accounting.record_error(w.ctx, 400, key_invalid_400(), key=before)
    assert read_published_file(key_file, "raw") not in (before, None)
    w.ctx.close()
