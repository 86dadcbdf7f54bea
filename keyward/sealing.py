"""Sealing key strings at rest: AES-256-GCM envelope encryption under a master key.

Each value gets its own random 256-bit data key. The data key encrypts the key string with the row's
identity as associated data, so a sealed value copied into another row does not open; the master key
wraps the data key, binding it to the same identity and to the master key's id. A sealed value reads

    kw1:<master key id>:<base64 nonce + wrapped data key>:<base64 nonce + ciphertext>

The master key id is a digest of the master key itself, so several master keys can coexist while
values are moved from one to another (`keyward db rekey` only re-wraps data keys), and a wrong master
key is told apart from a tampered value before anything is decrypted. This module is pure: where
master keys come from is `keyward.master_key`'s concern.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Callable

from keyward.errors import MasterKeyError, SecretTampered

PREFIX = "kw1:"
KEY_BYTES = 32
NONCE_BYTES = 12


def is_sealed(value: str | None) -> bool:
    """Return True for a value written by `Sealer.seal`; key strings never start with `kw1:`."""
    return value is not None and value.startswith(PREFIX)


def sealed_by(value: str | None) -> str | None:
    """Return the master key id a sealed value names, or None for plain text and empty values."""
    if not is_sealed(value):
        return None
    return value[len(PREFIX):].split(":", 1)[0]


def key_id_of(material: bytes) -> str:
    """Return the public id of a master key: 8 hex digits of a domain-separated SHA-256."""
    return hashlib.sha256(b"keyward master key id\0" + material).hexdigest()[:8]


@dataclass(frozen=True)
class MasterKey:
    """256 bits of key material and where they were found (for messages; never the bytes)."""

    material: bytes = field(repr=False)
    source: str

    def __post_init__(self) -> None:
        if len(self.material) != KEY_BYTES:
            raise MasterKeyError(f"{self.source}: a master key is {KEY_BYTES} bytes, got {len(self.material)}")

    @property
    def id(self) -> str:
        return key_id_of(self.material)

    @classmethod
    def generate(cls, source: str) -> "MasterKey":
        return cls(os.urandom(KEY_BYTES), source)


@dataclass
class Found:
    """The master keys a search produced (the first seals) and a line per place it looked."""

    keys: list[MasterKey]
    looked: list[str]

    def where(self) -> str:
        return "; ".join(self.looked) or "nowhere"


def _aead(material: bytes):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # lazy: only sealing pays for it

    return AESGCM(material)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Sealer:
    """Seals and opens values with the master keys `find` returns, looked up on first need.

    `find` runs at most once until a value names a master key id it did not return; then it runs
    again (a key added to the file or keyring while the daemon runs, before `keyward db rekey`). With
    no master key at all, `seal` returns the plain text: keyward then behaves as before encryption
    existed, and `keyward status` warns.
    """

    # A long-running process looks again this often, so a key put first in the file (before
    # `keyward db rekey`) becomes the one it seals with, without a restart.
    REFRESH_SECONDS = 60.0

    def __init__(self, find: Callable[[], Found] | None = None):
        self._find = find or (lambda: Found([], []))
        self._found: Found | None = None
        self._found_at = 0.0

    @classmethod
    def with_keys(cls, *keys: MasterKey) -> "Sealer":
        found = Found(list(keys), [k.source for k in keys])
        return cls(lambda: found)

    def found(self, refresh: bool = False) -> Found:
        """Return the master keys found; raise MasterKeyError for a source that exists but is unusable."""
        now = time.monotonic()
        if self._found is None or refresh or now - self._found_at > self.REFRESH_SECONDS:
            self._found, self._found_at = self._find(), now
        return self._found

    @property
    def primary(self) -> MasterKey | None:
        keys = self.found().keys
        return keys[0] if keys else None

    def _key(self, key_id: str) -> MasterKey | None:
        for refresh in (False, True):
            for key in self.found(refresh).keys:
                if key.id == key_id:
                    return key
        return None

    def seal(self, plain: str, aad: bytes, *, master: MasterKey | None = None) -> str:
        """Return `plain` sealed under `master` (default: the primary key), or `plain` without one."""
        master = master or self.primary
        if master is None:
            return plain
        data_key = os.urandom(KEY_BYTES)
        body_nonce, wrap_nonce = os.urandom(NONCE_BYTES), os.urandom(NONCE_BYTES)
        body = _aead(data_key).encrypt(body_nonce, plain.encode("utf-8"), aad)
        wrapped = _aead(master.material).encrypt(wrap_nonce, data_key, _wrap_aad(master.id, aad))
        return f"{PREFIX}{master.id}:{_b64(wrap_nonce + wrapped)}:{_b64(body_nonce + body)}"

    def open(self, value: str, aad: bytes, what: str) -> str:
        """Return the plain text of `value` (plain text passes through).

        `what` names the value in errors ("key k-1 of project p"). Raise MasterKeyError when no master
        key with the value's id is found (naming where we looked), SecretTampered when the value does
        not authenticate.
        """
        if not is_sealed(value):
            return value
        master_id, wrap_nonce, wrapped, body_nonce, body = _parse(value, what)
        master = self._require(master_id, what)
        from cryptography.exceptions import InvalidTag

        try:
            data_key = _aead(master.material).decrypt(wrap_nonce, wrapped, _wrap_aad(master_id, aad))
            return _aead(data_key).decrypt(body_nonce, body, aad).decode("utf-8")
        except (InvalidTag, UnicodeDecodeError):
            raise SecretTampered(
                f"the sealed secret of {what} failed authentication: it was altered, or copied from "
                "another row (AES-GCM tag mismatch); restore it from a backup or add the key again"
            ) from None

    def reseal(self, value: str, aad: bytes, what: str, *, master: MasterKey) -> str:
        """Return `value` sealed under `master`: a sealed value keeps its ciphertext and only has its
        data key re-wrapped; a plain one is sealed. The old value is authenticated first."""
        if not is_sealed(value):
            return self.seal(value, aad, master=master)
        old_id, wrap_nonce, wrapped, body_nonce, body = _parse(value, what)
        if old_id == master.id:
            return value
        self.open(value, aad, what)  # authenticate the whole value before re-wrapping
        old = self._require(old_id, what)
        data_key = _aead(old.material).decrypt(wrap_nonce, wrapped, _wrap_aad(old_id, aad))
        new_nonce = os.urandom(NONCE_BYTES)
        rewrapped = _aead(master.material).encrypt(new_nonce, data_key, _wrap_aad(master.id, aad))
        return f"{PREFIX}{master.id}:{_b64(new_nonce + rewrapped)}:{_b64(body_nonce + body)}"

    def _require(self, master_id: str, what: str) -> MasterKey:
        master = self._key(master_id)
        if master is not None:
            return master
        found = self.found()
        if not found.keys:
            raise MasterKeyError(
                f"the secret of {what} is sealed with master key {master_id}, and no master key was "
                f"found (looked in: {found.where()})"
            )
        held = ", ".join(f"{k.id} from {k.source}" for k in found.keys)
        raise MasterKeyError(
            f"the secret of {what} is sealed with master key {master_id}, which is not among the "
            f"master keys found ({held}); is this the right master key for this database?"
        )


def _wrap_aad(master_id: str, aad: bytes) -> bytes:
    return b"keyward data key\0" + master_id.encode("ascii") + b"\0" + aad


def _parse(value: str, what: str) -> tuple[str, bytes, bytes, bytes, bytes]:
    parts = value[len(PREFIX):].split(":")
    try:
        if len(parts) != 3 or len(parts[0]) != 8:
            raise ValueError("wrong number of fields")
        master_id = parts[0]
        if master_id.strip("0123456789abcdef"):
            raise ValueError("master key id is not lowercase hex")
        wrap = base64.b64decode(parts[1], validate=True)
        body = base64.b64decode(parts[2], validate=True)
        # Only the canonical encoding: the spare bits of a last base64 digit would otherwise let a
        # flipped bit through unnoticed (it decodes to the same bytes).
        if _b64(wrap) != parts[1] or _b64(body) != parts[2]:
            raise ValueError("not canonical base64")
        if len(wrap) != NONCE_BYTES + KEY_BYTES + 16 or len(body) < NONCE_BYTES + 16:
            raise ValueError("wrong length")
    except (ValueError, binascii.Error):
        raise SecretTampered(
            f"the sealed secret of {what} is malformed: it was altered or truncated "
            "(not a kw1 value keyward wrote); restore it from a backup or add the key again"
        ) from None
    return master_id, wrap[:NONCE_BYTES], wrap[NONCE_BYTES:], body[:NONCE_BYTES], body[NONCE_BYTES:]
