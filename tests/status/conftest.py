from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The publishing tests' world (config on disk, fake clock, keys and usage) serves status too.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "publishing"))

from publishing_helpers import make_world  # noqa: E402


@pytest.fixture
def world(tmp_path):
    w = make_world(tmp_path)
    yield w
    w.ctx.close()
