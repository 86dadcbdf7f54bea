"""Fixtures shared by every test folder: databases (real SQLite files, real PostgreSQL schemas)."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # makes tests/support importable as `support`

PG_BASE = os.environ.get("KEYWARD_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'keyward.db'}"


@pytest.fixture
def pg_url():
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    from sqlalchemy import create_engine, text

    schema = f"kw_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_BASE)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # pragma: no cover - only when the server is missing
        admin.dispose()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc.__class__.__name__}")
    yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def any_db_url(request, tmp_path: Path) -> str:
    """Both databases keyward supports, for tests whose behaviour must not differ between them."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'keyward.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def kw_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point keyward's state, runtime and config dirs into tmp_path (for this process and children)."""
    env = {
        "KEYWARD_STATE_DIR": str(tmp_path / "state"),
        "KEYWARD_RUNTIME_DIR": str(tmp_path / "run"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
        "XDG_STATE_HOME": str(tmp_path / "xdg-state"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("KEYWARD_CONFIG", "KEYWARD_DATABASE_URL", "KEYWARD_GOOGLE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    return env



@pytest.fixture(scope="module")
def emulator_server():
    """One emulator of Google's APIs per test module, over real HTTP; tests reset it via `emulated`."""
    from keyward.emulator import Emulator

    emu = Emulator().start()
    yield emu
    emu.stop()


@pytest.fixture
def emulated(emulator_server, monkeypatch):
    """Return `setup(projects, limits)`: reset the emulator, add the projects ({id: number}) with those
    limits, point keyward at it (KEYWARD_GOOGLE_EMULATOR_HOST), and return it."""

    def setup(projects: dict[str, str], limits: dict | None = None):
        emulator_server.reset()
        for project_id, number in projects.items():
            emulator_server.add_project(project_id, number, limits=limits)
        monkeypatch.setenv("KEYWARD_GOOGLE_EMULATOR_HOST", emulator_server.address)
        return emulator_server

    return setup
