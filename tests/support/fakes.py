"""Fake key strings generated at run time: tests never carry a literal key."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits + "-_"


def fake_auth_key() -> str:
    return "AQ." + secrets.token_urlsafe(40)


def fake_standard_key() -> str:
    return "AIza" + "".join(secrets.choice(_ALPHABET) for _ in range(35))
