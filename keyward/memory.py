"""Keeping the idle daemon's memory flat: the right allocator for Python objects, few malloc
arenas, and freed pages given back.

Python's own small-object allocator (pymalloc) returns a 1 MiB arena to the system only once every
object in it is freed. The daemon's bursts (building every pool's loads at start and every minute, a
status of every project, a pass over every project) leave a few long-lived objects in most arenas
they fill, so at 10,000 projects about 57 MB of empty pools stayed resident for good. Under
PYTHONMALLOC=malloc glibc's malloc holds every Python object instead, and `trim()` hands back any
free page wherever it lies: 50 MB less at 10,000 projects. glibc costs a few bytes more per object,
though, about 2.5 MB at 1,000 projects, where pymalloc's bursts are small. So `keyward run`, when
its SQLite database holds `MALLOC_FROM_PROJECTS` projects or more, re-executes itself once at the
very start under PYTHONMALLOC=malloc (`reexec_daemon`). An operator who sets PYTHONMALLOC keeps
their choice (PYTHONMALLOC=malloc for a big PostgreSQL installation, which is not counted).

glibc gives each thread that allocates its own malloc arena (up to 8 per core). The daemon's
worker threads each fill SQLite page caches and rebuild kept loads, so every new worker's arena
adds a few MB of RSS, and memory freed inside an arena stays resident: an idle daemon grew by
about 5 MB over its first minutes. Two arenas are plenty for threads that mostly wait, and
`trim()` after each heartbeat hands freed pages back to the system. Where the C library is not
glibc (musl, macOS) all of this does nothing.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

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


# Set, with PYTHONMALLOC, in the environment of the re-executed daemon only; both are taken out
# again at once, so programs the daemon starts (alert hooks) get the operator's environment.
REEXEC_MARK = "KEYWARD_REEXEC_MALLOC"
# From this many projects on, glibc's malloc keeps the daemon smaller than pymalloc (see above).
MALLOC_FROM_PROJECTS = 2000


def _on_glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):  # not glibc, or no such name on this system
        return False


def project_count(config_path: str | None) -> int | None:
    """How many projects the configured SQLite database holds, read with the standard library (the
    re-executed process imports SQLAlchemy, not this one); None when not SQLite or not readable."""
    try:
        import sqlite3
        from contextlib import closing
        from urllib.parse import quote

        from keyward.config import find_config_path, load_config

        url = load_config(find_config_path(config_path)).database_url
        prefix = "sqlite:///"
        path = url[len(prefix):].split("?", 1)[0] if url.startswith(prefix) else ""
        if not path or path == ":memory:" or not os.path.isfile(path):
            return None
        with closing(sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=1.0)) as db:
            return int(db.execute("SELECT count(*) FROM projects").fetchone()[0])
    except Exception as exc:  # the daemon reports a bad config or database itself, right after
        log.debug("projects not counted (%s); keeping pymalloc", exc)
        return None


def reexec_daemon(projects: Callable[[], int | None], environ=os.environ, execve=os.execve) -> bool:
    """Replace this process by the same command under PYTHONMALLOC=malloc when `projects()` says
    the installation is big enough (see above); return False when it is not done: already
    re-executed, the operator chose an allocator, not glibc, few or unknown projects, or the exec
    failed (the daemon then runs on with pymalloc). Call it before anything else.

    The process keeps its PID (systemd's main PID, NOTIFY_SOCKET and open descriptors stay), and
    signals ignored before the exec (SIGHUP during start-up) stay ignored after it.
    """
    if environ.get(REEXEC_MARK) == "1":
        environ.pop(REEXEC_MARK, None)
        if environ.get("PYTHONMALLOC") == "malloc":
            environ.pop("PYTHONMALLOC", None)
        return False
    argv = list(getattr(sys, "orig_argv", None) or [])
    if "PYTHONMALLOC" in environ or not argv or not sys.executable or not _on_glibc():
        return False
    count = projects()
    if count is None or count < MALLOC_FROM_PROJECTS:
        return False
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    try:
        execve(sys.executable, argv, {**environ, "PYTHONMALLOC": "malloc", REEXEC_MARK: "1"})
    except OSError as exc:
        log.debug("re-executing under PYTHONMALLOC=malloc failed (%s); going on with pymalloc", exc)
    return False
