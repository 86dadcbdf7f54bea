"""Where keyward sends Google API calls: Google's own hosts, or a local emulator.

Setting `KEYWARD_GOOGLE_EMULATOR_HOST=host:port` sends every Google call (API Keys, Monitoring,
Service Usage, Gemini) to that emulator over plain HTTP, the way `gcloud` emulators are chosen.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from keyward.errors import UsageError

ENV_VAR = "KEYWARD_GOOGLE_EMULATOR_HOST"
GEMINI_URL = "https://generativelanguage.googleapis.com"

_HOST_RE = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]"  # [IPv6]
                      r"|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)"  # name or IPv4
                      r":(?P<port>[0-9]{1,5})")


def emulator_host(env: Mapping[str, str] | None = None) -> str | None:
    """Return the emulator's `host:port` from the environment, or None when Google is the target.

    Raise UsageError naming the variable when it is set but is not `host:port` with a port 1-65535.
    """
    env = os.environ if env is None else env
    raw = env.get(ENV_VAR)
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    if value.startswith(("http://", "https://")):
        value = value.split("://", 1)[1].rstrip("/")
    match = _HOST_RE.fullmatch(value)
    if not match or not 1 <= int(match["port"]) <= 65535:
        raise UsageError(
            f"{ENV_VAR} must be host:port of the Google API emulator (for example 127.0.0.1:8085); "
            f"got {raw!r}"
        )
    return value


def api_endpoint(service: str, env: Mapping[str, str] | None = None) -> str | None:
    """Return the endpoint override for `service` ("http://host:port" when emulated), else None.

    None means "use Google's default endpoint from the discovery document".
    """
    host = emulator_host(env)
    return f"http://{host}" if host else None


def gemini_base_url(env: Mapping[str, str] | None = None) -> str:
    """Return the base URL of the Gemini API (no trailing slash)."""
    host = emulator_host(env)
    return f"http://{host}" if host else GEMINI_URL


def is_emulated(env: Mapping[str, str] | None = None) -> bool:
    """Return True when calls go to the emulator rather than Google."""
    return emulator_host(env) is not None
