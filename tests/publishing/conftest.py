from __future__ import annotations

import pytest
from publishing_helpers import make_world

from keyward.usage.loads import LoadBook


@pytest.fixture
def world(tmp_path):
    w = make_world(tmp_path)
    yield w
    w.ctx.close()


@pytest.fixture(params=["db", "kept loads"])
def world_both_ways(request, tmp_path):
    """A world whose choices come from the database (the CLI's way) or from kept loads (the daemon's)."""
    w = make_world(tmp_path)
    if request.param == "kept loads":
        w.ctx.loads = LoadBook()
    yield w
    w.ctx.close()
