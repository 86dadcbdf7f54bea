from __future__ import annotations

from keyward.config import load_config
from keyward.context import Context
from keyward.storage import store as q
from keyward.usage.loads import LoadBook


def _config(tmp_path, projects: list[str]):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "keyward.toml"
    path.write_text("".join(f'[projects.{p}]\nnumber = "1"\n' for p in projects))
    return load_config(path, env={"KEYWARD_STATE_DIR": str(tmp_path / "s"), "KEYWARD_RUNTIME_DIR": str(tmp_path / "r")})


def test_with_config_when_same_database_shares_the_kept_loads_and_reads_them_again(tmp_path):
    old = Context(_config(tmp_path, ["alpha-project-1"]))
    old.loads = LoadBook()
    with old.store.read() as s:
        assert list(old.loads.pool(s, q.get_pool(s, "default"), old.now()).loads) == ["alpha-project-1"]
    new = old.with_config(_config(tmp_path, ["alpha-project-1", "bravo-project-2"]))
    assert new.loads is old.loads
    with new.store.read() as s:  # the new project is there at once, not at the next check
        kept = new.loads.pool(s, q.get_pool(s, "default"), new.now())
    assert sorted(kept.loads) == ["alpha-project-1", "bravo-project-2"] and new.loads.rebuilds == 2
    new.close()


def test_context_without_a_daemon_keeps_no_loads(tmp_path):
    assert Context(_config(tmp_path, ["alpha-project-1"])).loads is None
