"""Publish a pool's key to the OS keyring, so `keyring.get_password("keyward", POOL)` returns it.

`keyring` is imported inside the methods: building the sink (and `keyward current`) stays cheap,
and a machine without a keyring backend fails only when this sink is actually used. Every error the
backend raises is wrapped in PublishError naming the backend and the service/username; backend
messages are scrubbed of the secret before they are quoted.
"""

from __future__ import annotations

import logging
from typing import Any

from keyward.errors import ConfigError, PublishError
from keyward.sinks.base import Sink

log = logging.getLogger(__name__)


def _scrub(text: str, secret: str | None) -> str:
    if secret and secret in text:
        from keyward.keystrings import mask

        text = text.replace(secret, mask(secret))
    return text


class KeyringSink(Sink):
    """Stores the key as the password of (`service`, `username`) in a keyring backend."""

    type_name = "keyring"
    option_names = frozenset({"service", "username", "backend"})

    def __init__(self, pool: str, **options: Any) -> None:
        super().__init__(pool, **options)
        for name in ("service", "username", "backend"):
            value = options.get(name)
            if name in options and (not isinstance(value, str) or not value):
                raise ConfigError(f"keyring sink of pool {pool!r}: {name} must be a non-empty string")
        self.service: str = options.get("service", "keyward")
        self.username: str = options.get("username", pool)
        self.backend_name: str | None = options.get("backend")
        self._backend: Any = None

    def describe(self) -> str:
        backend = self.backend_name or "default backend"
        return f"keyring {self.service}/{self.username} ({backend})"

    def _where(self, backend: Any = None) -> str:
        name = self.backend_name
        if backend is not None:
            cls = type(backend)
            name = f"{cls.__module__}.{cls.__qualname__}"
        return f"keyring {self.service}/{self.username} ({name or 'default backend'})"

    def _keyring(self) -> Any:
        if self._backend is None:
            try:
                import keyring
                import keyring.core

                if self.backend_name:
                    self._backend = keyring.core.load_keyring(self.backend_name)
                else:
                    self._backend = keyring.get_keyring()
            except Exception as exc:
                raise PublishError(
                    f"{self._where()}: cannot load the backend: {type(exc).__name__}: {exc}"
                ) from None
        return self._backend

    def _fail(self, action: str, exc: Exception, backend: Any, secret: str | None = None) -> PublishError:
        detail = _scrub(str(exc), secret)
        hint = ""
        if type(exc).__name__ == "KeyringLocked":
            hint = " (the keyring is locked; unlock it or run keyward where it is unlocked)"
        elif type(exc).__name__ == "NoKeyringError":
            hint = " (no keyring backend is available here)"
        return PublishError(f"{self._where(backend)}: cannot {action}: {type(exc).__name__}: {detail}{hint}")

    def publish(self, secret: str, key_id: str) -> None:
        """Set the password to `secret`; the backend replaces the previous one in one call."""
        backend = self._keyring()
        try:
            backend.set_password(self.service, self.username, secret)
        except Exception as exc:  # third-party boundary: every backend error becomes PublishError
            raise self._fail("store the key", exc, backend, secret) from None
        log.debug("published key %s to %s", key_id, self._where(backend))

    def read(self) -> str | None:
        backend = self._keyring()
        try:
            return backend.get_password(self.service, self.username)
        except Exception as exc:
            raise self._fail("read the key", exc, backend) from None

    def withdraw(self) -> None:
        """Delete the password; one that is already gone is fine."""
        backend = self._keyring()
        import keyring.errors

        try:
            backend.delete_password(self.service, self.username)
        except keyring.errors.PasswordDeleteError:
            pass
        except Exception as exc:
            raise self._fail("remove the key", exc, backend) from None
