"""Fixtures of the usage tests."""

from __future__ import annotations

import pytest
from usage_world import fake_services


@pytest.fixture
def services(monkeypatch):
    """Fake publishing and rotation services recording their calls."""
    return fake_services(monkeypatch)
