from __future__ import annotations

from keyward.config import load_config
from keyward.context import Context
from keyward.storage import store as q


def _config(tmp_path, projects: list[str]):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "keyward.toml"
    path.write_text("".join(f'[projects.{p}]\nnumber = "1"\n' for p in projects))
    return load_config(path, env={"KEYWARD_STATE_DIR": str(tmp_path / "s"), "KEYWARD_RUNTIME_DIR": str(tmp_path / "r")})


def _projects(ctx) -> list[str]:
    with ctx.store.read() as s:
        return [p.project_id for p in q.list_projects(s)]


def test_with_config_when_reloaded_shares_the_store_and_never_resyncs_the_old_config(tmp_path):
    old = Context(_config(tmp_path, ["alpha-project-1"]))
    assert _projects(old) == ["alpha-project-1"]
    new = old.with_config(_config(tmp_path, ["alpha-project-1", "bravo-project-2"]))
    assert new.store is old.store
    assert _projects(new) == ["alpha-project-1", "bravo-project-2"]
    # a job still holding the old Context keeps a working database and does not undo the reload
    assert _projects(old) == ["alpha-project-1", "bravo-project-2"]
    new.close()


def test_with_config_when_database_moves_opens_its_own(tmp_path):
    old = Context(_config(tmp_path / "one", ["alpha-project-1"]))
    old.store
    new = old.with_config(_config(tmp_path / "two", ["bravo-project-2"]))
    assert new.store is not old.store and _projects(new) == ["bravo-project-2"]
    old.close()
    new.close()


def test_retired_when_the_database_moved_refuses_to_reopen_the_old_one(tmp_path):
    """A job still holding the old Context after a reload moved the database must not reopen it
    (it would work there outside the daemon's leadership, and leave it open)."""
    import pytest

    from keyward.errors import StorageError

    old = Context(_config(tmp_path / "one", ["alpha-project-1"]))
    old.store
    new = old.with_config(_config(tmp_path / "two", ["bravo-project-2"]))
    old.retire()
    with pytest.raises(StorageError, match="reloaded onto another database"):
        old.store
    assert _projects(new) == ["bravo-project-2"]
    new.close()
