"""KeyringSink through a real Secret Service (gnome-keyring on a private D-Bus session)."""

from __future__ import annotations

import contextlib
import time

import pytest
from sink_contract import SinkContract, new_fake_key
from support.secret_service import BACKEND, lock_default_collection, secret_service_session

from keyward.sinks.os_keyring import KeyringSink

pytestmark = pytest.mark.keyring_service

# Failing paths run in a child process: keyring's Secret Service backend leaves a D-Bus
# connection open when it gives up, which would surface here as a ResourceWarning.
PUBLISH = """
import sys
from keyward.errors import PublishError
from keyward.sinks.os_keyring import KeyringSink
options = dict(arg.split("=", 1) for arg in sys.argv[1:])
try:
    KeyringSink("default", **options).publish(sys.stdin.read(), "key-new")
except PublishError as exc:
    print(exc)
    sys.exit(3)
"""


@pytest.fixture
def session_env(secret_service, monkeypatch):
    for name, value in secret_service.items():
        monkeypatch.setenv(name, value)
    return secret_service


class TestSecretServiceKeyringContract(SinkContract):
    @pytest.fixture
    def sink(self, session_env):
        return KeyringSink("default", backend=BACKEND)

    @pytest.fixture
    def break_sink(self, monkeypatch, tmp_path):
        @contextlib.contextmanager
        def broken(sink):
            with monkeypatch.context() as m:
                m.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path / 'no-bus'}")
                yield

        return broken


def test_publish_when_secret_service_runs_other_process_reads_key(session_env, python_runner):
    key = new_fake_key("auth")
    KeyringSink("default").publish(key, "k1")  # PYTHON_KEYRING_BACKEND picks the Secret Service
    result = python_runner(
        "import keyring; print(keyring.get_password('keyward', 'default'))", env=session_env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == key


def test_publish_when_collection_locked_raises_promptly(session_env, python_runner):
    KeyringSink("default", backend=BACKEND).publish(new_fake_key(), "key-old")
    lock_default_collection(session_env)
    new = new_fake_key()
    started = time.monotonic()
    result = python_runner(PUBLISH, f"backend={BACKEND}", stdin=new, env=session_env, timeout=30)
    assert time.monotonic() - started < 30
    assert result.returncode == 3, result.stderr
    assert f"keyring keyward/default ({BACKEND}): cannot store the key: KeyringLocked" in result.stdout
    assert "the keyring is locked" in result.stdout
    assert new not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "args, expected",
    [
        ([f"backend={BACKEND}"], f"keyring keyward/default ({BACKEND}): cannot"),
        ([], "no keyring backend is available here"),
    ],
    ids=["explicit-backend", "default-backend"],
)
def test_publish_when_bus_has_no_secret_service_raises(python_runner, monkeypatch, args, expected):
    from support.secret_service import missing_binaries

    if missing_binaries():
        pytest.skip(f"needs {', '.join(missing_binaries())}")
    new = new_fake_key()
    with secret_service_session(secrets=False) as env:
        env.pop("PYTHON_KEYRING_BACKEND")  # let keyring choose, as on an unconfigured host
        monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
        result = python_runner(PUBLISH, *args, stdin=new, env=env, timeout=30)
    assert result.returncode == 3, result.stderr
    assert expected in result.stdout
    assert new not in result.stdout + result.stderr
