"""keyward's own names for keys: readable in logs, unique, and valid as Google `keyId`s.

A key id is chosen before Google is asked to create the key and journaled first, so after a crash
keyward finds the key at Google by that id instead of leaving an orphan. Google requires
`[a-z]([a-z0-9-]{0,61}[a-z0-9])?` and rejects ids that look like UUIDs.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime

GOOGLE_KEY_ID = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")


def _stamp(now: datetime) -> str:
    return now.strftime("%Y%m%d-%H%M%S")


def rotation_key_id(now: datetime) -> str:
    """Return a fresh id for a key keyward creates through the API Keys API."""
    key_id = f"kw-{_stamp(now)}-{secrets.token_hex(3)}"
    assert GOOGLE_KEY_ID.fullmatch(key_id)
    return key_id


def manual_key_id(now: datetime) -> str:
    """Return a fresh id for a key the operator made by hand and gave to keyward."""
    return f"man-{_stamp(now)}-{secrets.token_hex(3)}"
