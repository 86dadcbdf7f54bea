"""What a Gemini key string looks like, and how keyward shows one without revealing it.

Standard keys are `AIza` + 35 URL-safe characters. Auth keys (bound to a service account) start
with `AQ.`; Google documents no fixed length for them, so keyward checks the prefix, a sane length
and the character set. Anything shown to a person or a log goes through `mask`.
"""

from __future__ import annotations

import re

from keyward.errors import InvalidKeyInput

STANDARD = "standard"
AUTH = "auth"

_STANDARD_RE = re.compile(r"AIza[0-9A-Za-z_-]{35}")
_AUTH_RE = re.compile(r"AQ\.[0-9A-Za-z_.\-]{16,512}")


def kind_of(secret: str) -> str:
    """Return `standard` or `auth` for a well-formed key string.

    Raise InvalidKeyInput naming what is wrong (never echoing the string) otherwise.
    """
    s = secret.strip()
    if not s:
        raise InvalidKeyInput("no key given: the input was empty")
    if any(c.isspace() for c in s):
        raise InvalidKeyInput("the key contains whitespace; paste exactly one key")
    if s.startswith("AIza"):
        if _STANDARD_RE.fullmatch(s):
            return STANDARD
        raise InvalidKeyInput(
            f"not a valid standard key: AIza keys are 39 characters of A-Z, a-z, 0-9, '-' and '_' "
            f"(got {len(s)} characters)"
        )
    if s.startswith("AQ."):
        if _AUTH_RE.fullmatch(s):
            return AUTH
        raise InvalidKeyInput(
            "not a valid auth key: AQ. keys continue with 16 to 512 characters of A-Z, a-z, 0-9, "
            f"'.', '-' and '_' (got {len(s)} characters)"
        )
    raise InvalidKeyInput(
        "not a Gemini API key: expected a standard key (AIza…) or an auth key (AQ.…)"
    )


def mask(secret: str | None) -> str:
    """Return the key's prefix and last four characters, e.g. `AQ.…wxyz`; never more."""
    if not secret:
        return "-"
    prefix = "AQ." if secret.startswith("AQ.") else "AIza" if secret.startswith("AIza") else ""
    if len(secret) < len(prefix) + 8:
        return (prefix or "") + "…"
    return f"{prefix}…{secret[-4:]}"


_ANY_KEY_RE = re.compile(r"AIza[0-9A-Za-z_-]{35}|AQ\.[0-9A-Za-z_.\-]{16,}")


def redact(text: str) -> str:
    """Return `text` with anything shaped like a key string masked: a safety net for messages
    keyward did not write itself (third-party exceptions, command output)."""
    return _ANY_KEY_RE.sub(lambda m: mask(m.group(0)), text)
