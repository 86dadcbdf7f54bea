from __future__ import annotations

import pytest
from publishing_helpers import make_world


@pytest.fixture
def world(tmp_path):
    w = make_world(tmp_path)
    yield w
    w.ctx.close()

