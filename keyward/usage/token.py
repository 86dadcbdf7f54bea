"""The ingest token: who may report over the loopback TCP port.

A report can take a project out of use (a 429) or a key (an invalid key), so reporting is as
sensitive as reading the key. The rule is therefore the key's own: the token file gets the owner,
group and mode of the published key file (the first file sink in the configuration, else 0600 in
the runtime directory), and sits next to it. Whoever may read the key may report; nobody else.

The daemon writes a fresh token at every start (atomically, mode set before any byte is written),
so a token that leaked dies with the next restart; clients read it at every new connection.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from keyward.errors import KeywardError, UsageError

if TYPE_CHECKING:
    from keyward.config import Config

TOKEN_NAME = "keyward-ingest.token"
MAX_TOKEN_FILE = 256


def _first_file_sink(config: "Config"):
    pools = sorted(config.pools.values(), key=lambda p: p.name != "default")
    for pool in pools:
        for sink in pool.sinks:
            if sink.type == "file":
                return sink
    return None


def token_location(config: "Config") -> tuple[Path, int, str | None]:
    """Return (path, mode, group name) of the ingest token for this configuration."""
    sink = _first_file_sink(config)
    if sink is None:
        return Path(config.runtime_dir) / TOKEN_NAME, 0o600, None
    path = Path(sink.options["path"])
    return path.parent / TOKEN_NAME, int(sink.options.get("mode", 0o600)), sink.options.get("group")


def write_token(config: "Config", token: str | None = None) -> Path:
    """Write `token` (a fresh one by default: the daemon, at start); return its path. Raise
    UsageError if it cannot."""
    from keyward.atomicfile import AtomicWriteError, ensure_private_dir, replace_file

    path, mode, group = token_location(config)
    gid = -1
    if group:
        import grp

        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise UsageError(f"ingest token {path}: group {group!r} does not exist") from None
    try:
        ensure_private_dir(path.parent, 0o750 if mode == 0o640 else 0o700, gid)
        replace_file(path, ((token or secrets.token_hex(32)) + "\n").encode(), mode=mode,
                     temp_prefix=".keyward-tmp-token-", gid=gid, group_name=group)
    except (AtomicWriteError, OSError) as exc:
        raise UsageError(f"ingest token {path}: cannot write it: {exc.strerror}") from None
    return path


def read_token(config: "Config") -> str | None:
    """Return the token, or None when this process may not read it (or there is none)."""
    from keyward.published import read_small_file

    path, _mode, _group = token_location(config)
    try:
        text = read_small_file(path, MAX_TOKEN_FILE)
    except (OSError, KeywardError):
        return None
    token = (text or "").strip()
    return token or None
