"""Reading what the daemon published, with nothing but the standard library.

`keyward current` runs on every start of the scripts that use it, so it must cost little more than
the interpreter: no click, no SQLAlchemy, no Google libraries, not even the full configuration
schema. `fast_current` reads the config file's TOML just far enough to find the pool's file sink
and reads that file. Whenever anything is unusual (no file sink, a config it cannot read, nothing
published) it returns None and the caller takes the slow, fully validated path, which also gives
the proper error message.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping

ENV_NAMES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
MAX_PUBLISHED = 4096  # a published file is a key and a newline, or two env lines


class UnsafeFile(OSError):
    """A path keyward reads is not a plain regular file (a symlink, FIFO, device) or is too large."""


def read_small_file(path: str | os.PathLike[str], limit: int) -> str | None:
    """Return the text of the regular file at `path`, or None if it does not exist.

    Opened without following a symlink and without blocking (a FIFO put there by someone else
    would otherwise hang the reader), accepted only if fstat says it is a regular file, and read
    up to `limit` bytes: a file that is larger is refused, so `/dev/zero` or a huge file cannot
    make a reader grow. Raise UnsafeFile for those, OSError for others (permission denied).
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFile(errno.ELOOP, f"{os.fspath(path)} is a symbolic link; keyward reads "
                             "only a regular file it wrote itself") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(errno.EINVAL, f"{os.fspath(path)} is not a regular file")
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise UnsafeFile(errno.EFBIG, f"{os.fspath(path)} is larger than {limit} bytes")
    return data.decode("utf-8", errors="replace")


def published_state_path(runtime_dir, pool: str):
    """Where the publisher records, without the secret, what it last published for `pool`."""
    return runtime_dir / f"{pool}.state.json"


def read_published_file(path: str | os.PathLike[str], format: str = "raw") -> str | None:
    """Return the key in a file written by the file sink, or None if the file is missing or holds none.

    OSError other than a missing file (permission denied, UnsafeFile) propagates.
    """
    text = read_small_file(path, MAX_PUBLISHED)
    if text is None:
        return None
    if format == "env":
        for line in text.splitlines():
            name, sep, value = line.strip().partition("=")
            if sep and name.strip() == ENV_NAMES[0]:
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                    value = value[1:-1]
                return value or None
        return None
    return text.strip() or None


def light_config(config_path: str | None = None,
                 env: Mapping[str, str] | None = None) -> tuple[dict, str] | None:
    """Return (the config file's raw TOML, the runtime directory), or None when unsure.

    Applies the same precedence as load_config (environment, then the file, then the defaults)
    without validating anything: callers fall back to the full path on None or on any doubt.
    """
    path = light_config_path(config_path, env)
    if path is False:
        return None
    raw: dict = {}
    if path is not None:
        import tomllib

        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except (OSError, ValueError, RecursionError):
            return None
    environ = os.environ if env is None else env
    system = path is not None and os.path.normpath(path) == SYSTEM_CONFIG
    state_dir = (_expand(environ.get("KEYWARD_STATE_DIR")) or _expand(raw.get("state_dir"))
                 or light_state_dir(environ, system))
    runtime_dir = (_expand(environ.get("KEYWARD_RUNTIME_DIR")) or _expand(raw.get("runtime_dir"))
                   or light_runtime_dir(environ, state_dir, system))
    return raw, runtime_dir


# The rules of keyward.config.paths again, on strings: importing pathlib (and what it pulls in: re,
# fnmatch, urllib.parse, ipaddress) would double the start-up cost of `keyward current`. A test
# holds the two in agreement.
SYSTEM_CONFIG = "/etc/keyward/keyward.toml"


def _get(environ: Mapping[str, str], name: str) -> str | None:
    return environ.get(name, "") or None


def _home(environ: Mapping[str, str]) -> str:
    return _get(environ, "HOME") or os.path.expanduser("~")


def light_config_path(explicit: str | None, env: Mapping[str, str] | None) -> str | None | bool:
    """The config file find_config_path would pick, None for none, False when it would raise."""
    environ = os.environ if env is None else env
    named = explicit or _get(environ, "KEYWARD_CONFIG")
    if named:
        path = os.path.expanduser(named)
        return path if os.path.isfile(path) else False
    base = _get(environ, "XDG_CONFIG_HOME") or os.path.join(_home(environ), ".config")
    for path in (os.path.join(base, "keyward", "keyward.toml"), SYSTEM_CONFIG):
        if os.path.isfile(path):
            return path
    return None


def light_state_dir(environ: Mapping[str, str], system: bool) -> str:
    if _get(environ, "KEYWARD_STATE_DIR"):
        return os.path.expanduser(environ["KEYWARD_STATE_DIR"])
    if os.geteuid() == 0 or system:
        return "/var/lib/keyward"
    base = _get(environ, "XDG_STATE_HOME") or os.path.join(_home(environ), ".local", "state")
    return os.path.join(base, "keyward")


def light_runtime_dir(environ: Mapping[str, str], state_dir: str | None, system: bool) -> str:
    if _get(environ, "KEYWARD_RUNTIME_DIR"):
        return os.path.expanduser(environ["KEYWARD_RUNTIME_DIR"])
    if _get(environ, "RUNTIME_DIRECTORY"):
        return environ["RUNTIME_DIRECTORY"].split(":")[0]
    if os.geteuid() == 0 or system:
        return "/run/keyward"
    if _get(environ, "XDG_RUNTIME_DIR"):
        return os.path.join(environ["XDG_RUNTIME_DIR"], "keyward")
    return os.path.join(state_dir or light_state_dir(environ, system), "run")


def fast_current(pool: str, config_path: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """Return the key published for `pool` through its file sink, or None to take the slow path."""
    found = light_config(config_path, env)
    if found is None:
        return None
    raw, runtime_dir = found
    pools = raw.get("pools", {})
    if not isinstance(pools, dict):
        return None
    sinks = pools.get(pool, {}).get("sinks") if isinstance(pools.get(pool), dict) else None
    if sinks is None:
        if pools and pool not in pools:
            return None  # possibly a CLI-added pool, or a typo: let the slow path decide
        return _read(os.path.join(runtime_dir, f"{pool}.key"), "raw")
    for sink in sinks if isinstance(sinks, list) else ():
        if isinstance(sink, dict) and sink.get("type") == "file" and isinstance(sink.get("path"), str):
            return _read(os.path.expanduser(sink["path"]), sink.get("format", "raw"))
    return None


def _expand(value) -> str | None:
    return os.path.expanduser(value) if isinstance(value, str) and value else None


def _read(path: str, format: str) -> str | None:
    try:
        return read_published_file(path, format if format in ("raw", "env") else "raw")
    except OSError:
        return None
