"""Publish a pool's key to a file, atomically, for programs and systemd units to read.

Formats: `raw` is the key and a newline; `env` is one `NAME=…` line per name in `variables`
(default `GEMINI_API_KEY` only: google-genai and LangChain read it, and warn on every client when
`GOOGLE_API_KEY` is set too) for a unit's `EnvironmentFile=` (read only at unit start, so such
consumers must be restarted).

The write is a temp file in the same directory (so `os.replace` is a rename within one file
system), given its final mode before any byte of the key is written, fsynced, renamed over the
target, and the directory fsynced. Readers see the old file or the new one, never a torn one.

`read_published_file` is the fast path for `keyward current`: it uses only the standard library.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from keyward.errors import ConfigError, PublishError
from keyward.published import DEFAULT_VARIABLES, ENV_NAMES, read_published_file  # noqa: F401 (re-exported)
from keyward.sinks.base import Sink

FORMATS = ("raw", "env")
MODES = (0o600, 0o640)
TEMP_PREFIX = ".keyward-tmp-"
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")

log = logging.getLogger(__name__)


def _parse_mode(value: Any, pool: str) -> int:
    if isinstance(value, str):
        try:
            value = int(value, 8)
        except ValueError:
            value = None
    if isinstance(value, bool) or value not in MODES:
        raise ConfigError(f"file sink of pool {pool!r}: mode must be 0600 or 0640")
    return int(value)


def check_variables(value: Any, pool: str) -> tuple[str, ...]:
    """The env format's variable names: a non-empty list of distinct shell variable names."""
    names = tuple(value) if isinstance(value, (list, tuple)) else ()
    if not names or len(set(names)) != len(names) or not all(
            isinstance(n, str) and VARIABLE_NAME.fullmatch(n) for n in names):
        raise ConfigError(f"file sink of pool {pool!r}: variables must be a list of distinct variable "
                          "names like [\"GEMINI_API_KEY\"]")
    return names


class FileSink(Sink):
    """Writes the key to `path` in `raw` or `env` format with mode 0600/0640 and an optional group."""

    type_name = "file"
    option_names = frozenset({"path", "format", "mode", "group", "variables"})

    def __init__(self, pool: str, **options: Any) -> None:
        super().__init__(pool, **options)
        if "path" not in options:
            raise ConfigError(f"file sink of pool {pool!r}: 'path' is required")
        path = options["path"]
        if not isinstance(path, (str, os.PathLike)) or not os.path.isabs(path):
            raise ConfigError(f"file sink of pool {pool!r}: path must be an absolute path, got {path!r}")
        self.path: str = os.path.normpath(os.fspath(path))
        self.parent = os.path.dirname(self.path)
        self.format = options.get("format", "raw")
        if self.format not in FORMATS:
            raise ConfigError(f"file sink of pool {pool!r}: format must be one of {', '.join(FORMATS)}")
        self.mode = _parse_mode(options.get("mode", 0o600), pool)
        self.group: str | None = options.get("group")
        if self.group is not None and (not isinstance(self.group, str) or not self.group):
            raise ConfigError(f"file sink of pool {pool!r}: group must be a group name")
        self._temp_prefix = f"{TEMP_PREFIX}{os.path.basename(self.path)}-"
        variables = options.get("variables")
        self.variables = check_variables(DEFAULT_VARIABLES if variables is None else variables, pool)

    def describe(self) -> str:
        group = f", group {self.group}" if self.group else ""
        return f"file {self.path} ({self.format}, {self.mode:04o}{group})"

    def _render(self, secret: str) -> bytes:
        if self.format == "env":
            return "".join(f"{name}={secret}\n" for name in self.variables).encode()
        return f"{secret}\n".encode()

    def _gid(self) -> int:
        if self.group is None:
            return -1
        import grp

        try:
            return grp.getgrnam(self.group).gr_gid
        except KeyError:
            raise PublishError(f"{self.describe()}: group {self.group!r} does not exist") from None

    def _ensure_parent(self, gid: int) -> None:
        parent = self.parent
        if os.path.isdir(parent):
            return
        from keyward.atomicfile import ensure_private_dir

        mode = 0o750 if self.mode == 0o640 else 0o700
        try:
            ensure_private_dir(parent, mode, gid)  # every level it creates, whatever the umask
        except OSError as exc:
            raise PublishError(f"{self.describe()}: cannot create directory {parent}: {exc.strerror}") from None

    def publish(self, secret: str, key_id: str) -> None:
        """Replace the file with one holding `secret`; raise PublishError and keep the old file on failure."""
        if not secret or any(c.isspace() for c in secret):
            raise PublishError(f"{self.describe()}: refusing a key that is empty or contains whitespace")
        from keyward.atomicfile import AtomicWriteError, replace_file

        gid = self._gid()
        self._ensure_parent(gid)
        try:
            replace_file(self.path, self._render(secret), mode=self.mode, temp_prefix=self._temp_prefix,
                         gid=gid, group_name=self.group)
        except AtomicWriteError as exc:
            raise PublishError(f"{self.describe()}: cannot {exc.step}: {exc.strerror}") from None
        log.debug("published key %s to %s", key_id, self.describe())

    def read(self) -> str | None:
        try:
            return read_published_file(self.path, self.format, self.variables)
        except OSError as exc:
            raise PublishError(f"{self.describe()}: cannot read it: {exc.strerror}") from None

    def change_marker(self) -> tuple[int, ...] | None:
        """The file's stat (see `keyward.atomicfile.settled_marker`): a file deleted, replaced or
        edited by someone else shows a new marker, so the next pass reads and repairs it."""
        from keyward.atomicfile import settled_marker

        return settled_marker(self.path)

    def withdraw(self) -> None:
        """Delete the published file; a file already gone is fine."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise PublishError(f"{self.describe()}: cannot remove it: {exc.strerror}") from None

    def cleanup_stale_temp_files(self) -> int:
        """Remove temp files a crashed writer of this sink left behind; return how many were removed."""
        from keyward.atomicfile import remove_temp_files

        return remove_temp_files(self.parent, self._temp_prefix)
