"""Helpers for the configuration tests: write a TOML file, load it, and look at the problems."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from keyward.config import load_config
from keyward.errors import ConfigError


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment with nothing keyward reads set, except a HOME of its own."""
    return {"HOME": str(tmp_path / "home")}


@pytest.fixture
def user(monkeypatch: pytest.MonkeyPatch) -> None:
    """Behave as an unprivileged user even when the tests run as root."""
    monkeypatch.setattr("keyward.config.paths._is_root", lambda: False)


@pytest.fixture
def root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("keyward.config.paths._is_root", lambda: True)


@pytest.fixture
def write(tmp_path: Path):
    """Write dedented TOML to a file and return its path."""

    def write(text: str, name: str = "keyward.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def problems_of(write, env):
    """Load dedented TOML that must be invalid; return (path, the ConfigError's problems)."""

    def problems_of(text: str, **kwargs) -> tuple[str, list[str]]:
        path = write(text)
        with pytest.raises(ConfigError) as caught:
            load_config(path, env=env, **kwargs)
        return str(path), caught.value.problems

    return problems_of


def _find(problems: list[str], file: str, line: int, key: str, fragment: str) -> str:
    """Return the one problem reported at FILE:LINE for key path `key` that contains `fragment`."""
    prefix = f"{file}:{line}: at '{key}': "
    hits = [p for p in problems if p.startswith(prefix) and fragment in p]
    assert len(hits) == 1, f"no single problem {prefix!r} with {fragment!r} in:\n" + "\n".join(problems)
    return hits[0]


@pytest.fixture
def find():
    """The `_find` helper, as a fixture: conftest modules cannot be imported by name reliably."""
    return _find
