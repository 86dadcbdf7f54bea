"""KeyringSink through a small file-backed keyring backend chosen with the `backend` option."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import keyring.errors
import pytest
from keyring.backend import KeyringBackend
from keyring.compat import properties
from sink_contract import SinkContract, new_fake_key

from keyward.errors import ConfigError, PublishError
from keyward.sinks.os_keyring import KeyringSink


class JsonFileKeyring(KeyringBackend):
    """Passwords in one JSON file; viable only while a test has set `path`."""

    path: ClassVar[Path | None] = None
    fail_with: ClassVar[Callable[[str], Exception] | None] = None  # given the password

    @properties.classproperty
    def priority(cls) -> float:
        if cls.path is None:
            raise RuntimeError("no storage path set")  # never picked as anyone's default
        return 1

    def _load(self) -> dict[str, str]:
        assert self.path is not None
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def get_password(self, service, username):
        return self._load().get(f"{service}\0{username}")

    def set_password(self, service, username, password):
        if type(self).fail_with is not None:
            raise type(self).fail_with(password)
        data = self._load()
        data[f"{service}\0{username}"] = password
        self.path.write_text(json.dumps(data))

    def delete_password(self, service, username):
        data = self._load()
        if data.pop(f"{service}\0{username}", None) is None:
            raise keyring.errors.PasswordDeleteError("no such password")
        self.path.write_text(json.dumps(data))


BACKEND = f"{JsonFileKeyring.__module__}.{JsonFileKeyring.__qualname__}"


@pytest.fixture
def json_keyring(tmp_path, monkeypatch):
    monkeypatch.setattr(JsonFileKeyring, "path", tmp_path / "keyring.json")
    monkeypatch.setattr(JsonFileKeyring, "fail_with", None)
    return JsonFileKeyring


class TestKeyringSinkContract(SinkContract):
    @pytest.fixture
    def sink(self, json_keyring):
        return KeyringSink("default", backend=BACKEND)

    @pytest.fixture(params=["locked", "foreign"])
    def break_sink(self, request, monkeypatch):
        @contextlib.contextmanager
        def broken(sink):
            # A backend may echo what it was given; the sink must scrub it either way.
            def error(password: str) -> Exception:
                if request.param == "locked":
                    return keyring.errors.KeyringLocked("Failed to unlock the collection!")
                return OSError(f"disk full while writing {password}")

            with monkeypatch.context() as m:
                m.setattr(JsonFileKeyring, "fail_with", error)
                yield

        return broken


def test_publish_when_backend_option_set_stores_under_service_and_pool(json_keyring):
    key = new_fake_key()
    KeyringSink("default", backend=BACKEND).publish(key, "k1")
    assert JsonFileKeyring().get_password("keyward", "default") == key


def test_publish_when_service_and_username_set_uses_them(json_keyring):
    key = new_fake_key()
    sink = KeyringSink("default", backend=BACKEND, service="gemini", username="ci")
    sink.publish(key, "k1")
    assert JsonFileKeyring().get_password("gemini", "ci") == key
    assert sink.describe() == f"keyring gemini/ci ({BACKEND})"


def test_publish_when_backend_echoes_secret_error_masks_it(json_keyring, monkeypatch):
    key = new_fake_key()
    monkeypatch.setattr(JsonFileKeyring, "fail_with", lambda pw: OSError(f"cannot store {pw}"))
    with pytest.raises(PublishError) as caught:
        KeyringSink("default", backend=BACKEND).publish(key, "k1")
    message = str(caught.value)
    assert key not in message
    assert f"AIza…{key[-4:]}" in message
    assert f"keyring keyward/default ({BACKEND}): cannot store the key: OSError" in message


def test_publish_when_locked_error_explains_unlocking(json_keyring, monkeypatch):
    monkeypatch.setattr(JsonFileKeyring, "fail_with", lambda pw: keyring.errors.KeyringLocked("locked"))
    with pytest.raises(PublishError, match="KeyringLocked: locked .the keyring is locked"):
        KeyringSink("default", backend=BACKEND).publish(new_fake_key(), "k1")


def test_publish_when_backend_unknown_raises_naming_it():
    sink = KeyringSink("default", backend="keyward_no_such_module.Keyring")
    with pytest.raises(PublishError, match="keyward_no_such_module.Keyring.*cannot load the backend"):
        sink.publish(new_fake_key(), "k1")


def test_read_when_backend_fails_raises_publish_error(json_keyring, monkeypatch):
    def failing(self, service, username):
        raise keyring.errors.InitError("no bus")

    monkeypatch.setattr(JsonFileKeyring, "get_password", failing)
    with pytest.raises(PublishError, match="cannot read the key: InitError: no bus"):
        KeyringSink("default", backend=BACKEND).read()


@pytest.mark.parametrize(
    "options, message",
    [({"service": ""}, "service must be a non-empty string"), ({"usrname": "x"}, "did you mean 'username'")],
)
def test_keyring_sink_when_options_invalid_raises_config_error(options, message):
    with pytest.raises(ConfigError, match=message):
        KeyringSink("default", **options)


def test_describe_when_no_backend_option_does_not_load_keyring(monkeypatch):
    sink = KeyringSink("ci")
    assert sink.describe() == "keyring keyward/ci (default backend)"
    assert sink._backend is None
