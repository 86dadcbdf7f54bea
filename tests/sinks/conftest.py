"""Fixtures for the sink tests: fake keys, a private Secret Service, a subprocess runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent
for _path in (TESTS, Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))  # `support.secret_service` and `sink_contract`

from sink_contract import new_fake_key  # noqa: E402
from support.secret_service import missing_binaries, secret_service_session  # noqa: E402


@pytest.fixture
def fake_key() -> Callable[..., str]:
    return new_fake_key


@pytest.fixture
def secret_service() -> Iterator[dict[str, str]]:
    """A running, unlocked, private Secret Service; yields the environment that reaches it."""
    missing = missing_binaries()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install gnome-keyring dbus)")
    with secret_service_session() as env:
        yield env


def run_python(code: str, *args: str, stdin: str = "", env: dict[str, str] | None = None,
               timeout: float = 60, **popen: object) -> subprocess.CompletedProcess[str]:
    """Run `code` with `args` in a fresh interpreter that can import keyward; fail on timeout."""
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", code, *args], input=stdin, env=full_env, capture_output=True,
        text=True, timeout=timeout, **popen,  # type: ignore[arg-type]
    )


@pytest.fixture
def python_runner() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_python
