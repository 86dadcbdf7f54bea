"""Keeping the idle daemon's memory flat: few malloc arenas, and freed pages given back.

glibc gives each thread that allocates its own malloc arena (up to 8 per core). The daemon's
worker threads each fill SQLite page caches and rebuild kept loads, so every new worker's arena
adds a few MB of RSS, and memory freed inside an arena stays resident: an idle daemon grew by
about 5 MB over its first minutes. Two arenas are plenty for threads that mostly wait, and
`trim()` after each heartbeat hands freed pages back to the system. Where the C library is not
glibc (musl, macOS) both do nothing.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's mallopt parameter number
ARENAS = 2

_libc = None


def _glibc():
    global _libc
    if _libc is None:
        import ctypes
        import ctypes.util

        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _libc = lib if hasattr(lib, "malloc_trim") and hasattr(lib, "mallopt") else False
        except OSError:
            _libc = False
    return _libc or None


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas (call before starting threads); return whether it applied."""
    lib = _glibc()
    return bool(lib and lib.mallopt(M_ARENA_MAX, arenas))


def trim() -> bool:
    """Give memory freed inside malloc's arenas back to the system; return whether any was."""
    lib = _glibc()
    return bool(lib and lib.malloc_trim(0))
