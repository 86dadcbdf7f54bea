from __future__ import annotations

import pytest
from publishing_helpers import make_world


@pytest.fixture
def world(tmp_path):
    w = make_world(tmp_path)
    yield w
    w.ctx.close()


@pytest.fixture(autouse=True)
def _pool_loads_stand_in(monkeypatch):
    # TEMPORARY until keyward.usage.accounting imports cleanly; the function is the real one.
    try:
        import keyward.usage.accounting  # noqa: F401
    except ImportError:
        from keyward.publishing import service
        from keyward.publishing.candidates import LoadFacts
        from keyward.usage.loads import pool_loads

        monkeypatch.setattr(service, "_loads", lambda s, pool, now: {
            pl.project_id: LoadFacts(pl.load, pl.exhausted_until) for pl in pool_loads(s, pool, now)})
