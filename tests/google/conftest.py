"""Fixtures for the Google clients: one emulator per module, fresh state per test."""

from __future__ import annotations

import pytest


PROJECT = "alpha"
NUMBER = "111111111111"
MODEL = "gemini-2.5-flash"
LIMITS = {MODEL: {"rpm": 10, "tpm": 100000, "rpd": 500}}


class FakeSleep:
    """Records the sleeps asked for instead of sleeping."""

    def __init__(self):
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)

    @property
    def total(self) -> float:
        return sum(self.calls)


@pytest.fixture
def emu(emulated):
    """The emulator, reset, with project alpha, and keyward pointed at it."""
    return emulated({PROJECT: NUMBER}, LIMITS)


@pytest.fixture
def fake_sleep():
    return FakeSleep()
