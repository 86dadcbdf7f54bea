"""Fixtures of the usage tests."""

from __future__ import annotations

import pytest
from usage_world import fake_services


@pytest.fixture
def services(monkeypatch):
    """Fake publishing and rotation services recording their calls."""
    return fake_services(monkeypatch)


@pytest.fixture(autouse=True)
def _reporter_closed():
    """The reporter caches connections per process; each test starts and ends without them."""
    from keyward.usage import reporter

    yield
    reporter.close()
