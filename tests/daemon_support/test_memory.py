"""keyward.memory: glibc's arena cap and trim where glibc is, nothing (and no error) elsewhere."""

from __future__ import annotations

import ctypes
import platform

import pytest

from keyward import memory


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.setattr(memory, "_libc", None)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_limit_arenas_and_trim_when_glibc_apply():
    assert memory.limit_arenas() is True
    freed = [bytearray(64 * 1024) for _ in range(200)]  # freed memory for trim to hand back
    del freed
    assert isinstance(memory.trim(), bool)


def test_limit_arenas_and_trim_when_no_glibc_do_nothing(monkeypatch):
    def missing(*_args, **_kwargs):
        raise OSError("no such library")

    monkeypatch.setattr(ctypes, "CDLL", missing)
    assert memory.limit_arenas() is False
    assert memory.trim() is False
