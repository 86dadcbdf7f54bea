from __future__ import annotations

import urllib.request
from pathlib import Path

from keyward import inventory
from keyward.config import load_config
from keyward.context import Context
from keyward.metrics import start_metrics_server
from keyward.publishing.service import publish_pools
from support.fakes import fake_auth_key

CONFIG = """
[projects.alpha-project-1]
number = "11"
[projects.alpha-project-1.limits."gemini-2.5-flash"]
rpm = 10
rpd = 100
"""


def test_metrics_when_scraped_show_load_limits_and_current_key_id_never_the_key(tmp_path: Path):
    path = tmp_path / "keyward.toml"
    path.write_text(CONFIG)
    env = {"KEYWARD_STATE_DIR": str(tmp_path / "state"), "KEYWARD_RUNTIME_DIR": str(tmp_path / "run")}
    secret = fake_auth_key()
    with Context(load_config(path, env=env)) as ctx:
        view = inventory.add_key(ctx, "alpha-project-1", secret)
        publish_pools(ctx, trigger="test")
        from keyward.storage import store as q

        with ctx.store.write() as s:
            q.journal(s, "rotation.failed", "verification failed", level="error", project="alpha-project-1")
        server = start_metrics_server(lambda: ctx, "127.0.0.1:0")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as response:
                body = response.read().decode()
        finally:
            server.stop()
    assert f'keyward_pool_current_key_info{{key_id="{view.key_id}",pool="default",project="alpha-project-1"}} 1.0' in body
    assert 'keyward_limit{model="gemini-2.5-flash",pool="default",project="alpha-project-1",source="config",window="rpm"} 10.0' in body
    assert 'keyward_errors_last_24h{kind="rotation.failed"} 1.0' in body
    assert "keyward_project_load" in body and "keyward_key_age_seconds" in body
    assert secret not in body and secret[3:] not in body
