"""The non-secret state file a pool's publisher keeps beside the key: what is published and why.

`keyward current --check` and monitoring scripts read it (`keyward.client.read_published_state`)
without opening the database. It never holds the key string, only its id and mask. It is written
like the file sink writes keys (temp file in the same directory, fsync, rename), so a reader sees
the old state or the new one, and only when its content changes. What was last seen in each file
is remembered with the file's stat (`keyward.atomicfile.settled_marker`), so a pass that changes
nothing neither reads nor writes it, and a file someone else changed or removed is rewritten.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from keyward.atomicfile import AtomicWriteError, remove_temp_files, replace_file, settled_marker
from keyward.published import published_state_path
from keyward.errors import PublishError

log = logging.getLogger(__name__)

TEMP_PREFIX = ".keyward-state-"
STATE_MODE = 0o644  # nothing secret inside; consumers in other groups may run `current --check`
MAX_SEEN = 10_000  # bounds the remembered files (one per pool and runtime directory)

# state file path -> (its content, its stat marker) when last read or found unchanged
_SEEN: dict[str, tuple[bytes, tuple[int, ...]]] = {}


def render_state(state: dict[str, Any]) -> bytes:
    return (json.dumps(state, indent=2, sort_keys=True) + "\n").encode()


def write_state(runtime_dir: Path, pool: str, state: dict[str, Any]) -> bool:
    """Replace the pool's state file with `state` when it differs; return True if written.

    Raise PublishError (leaving the old file) when the directory or file cannot be written.
    """
    path = published_state_path(runtime_dir, pool)
    where = os.fspath(path)
    data = render_state(state)
    marker = settled_marker(path)  # taken before the read: a later change shows next time
    if marker is not None and _SEEN.get(where) == (data, marker):
        return False
    _SEEN.pop(where, None)
    from keyward.published import read_small_file

    try:  # never follows a symlink nor waits on a FIFO someone put there
        if (read_small_file(path, 64 * 1024) or "").encode() == data:
            if marker is not None:
                if len(_SEEN) >= MAX_SEEN:
                    _SEEN.clear()
                _SEEN[where] = (data, marker)
            return False
    except OSError:
        pass
    try:
        from keyward.atomicfile import ensure_private_dir

        ensure_private_dir(runtime_dir, 0o750)
    except OSError as exc:
        raise PublishError(f"state file {path}: cannot create {runtime_dir}: {exc.strerror}") from None
    try:
        replace_file(path, data, mode=STATE_MODE, temp_prefix=TEMP_PREFIX)
    except AtomicWriteError as exc:
        raise PublishError(f"state file {path}: cannot {exc.step}: {exc.strerror}") from None
    return True


def cleanup_state_temp_files(runtime_dir: Path) -> int:
    """Remove temp files a crashed writer left in `runtime_dir`; return how many."""
    return remove_temp_files(runtime_dir, TEMP_PREFIX)
