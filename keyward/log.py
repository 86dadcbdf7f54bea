"""Logging set-up for keyward's entry points: one line per event, journald-aware, key-redacting.

Only the CLI and the daemon entry point call `setup_logging`; library modules just use
`logging.getLogger(__name__)`. Under systemd (`$JOURNAL_STREAM` set) each line starts with a
syslog priority prefix such as `<4>` so `journalctl -p warning` works, and carries no timestamp
because journald adds its own. Elsewhere a line reads `2026-11-28T10:00:00Z INFO logger: message`.

Context given as `extra={"project": ..., "pool": ..., "key_id": ...}` is appended as
` project=... pool=... key_id=...`.

`RedactingFilter` masks anything shaped like a Gemini key in the message, its arguments, the
exception text and the context fields. It is a safety net: code must never log a key to begin with.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from typing import TextIO

from keyward.errors import UsageError
from keyward.keystrings import mask

log = logging.getLogger(__name__)

CONTEXT_FIELDS = ("project", "pool", "key_id")

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

_KEY_RE = re.compile(r"AIza[0-9A-Za-z_-]{35}|AQ\.[0-9A-Za-z_.-]{16,}")

# Noisy third-party loggers and the level they are held at. The discovery cache only ever warns
# that it has no file cache; the scheduler's chatter is useful when debugging, so it is let through.
# googleapiclient logs request URLs (lookupKey carries a key string) and, when dumping, bodies:
# keep it quiet even under --debug, so the redacting filter is a backstop, not the protection. Its
# warnings ("Encountered 403") only repeat errors keyward translates and reports itself.
_ALWAYS_QUIET = {"googleapiclient.discovery_cache": logging.ERROR, "googleapiclient": logging.ERROR}
_QUIET_UNLESS_DEBUG = {"apscheduler": logging.WARNING, "alembic": logging.WARNING}

_HANDLER_MARK = "_keyward_handler"


def redact(text: str) -> str:
    """Return `text` with every key-shaped substring replaced by its mask."""
    return _KEY_RE.sub(lambda m: mask(m.group(0)), text)


def _syslog_prefix(levelno: int) -> str:
    if levelno >= logging.ERROR:
        return "<3>"
    if levelno >= logging.WARNING:
        return "<4>"
    if levelno >= logging.INFO:
        return "<6>"
    return "<7>"


class RedactingFilter(logging.Filter):
    """Mask key-shaped strings in a record before any formatter sees it.

    The message is rendered once (`msg % args`), redacted, and stored back with no args, so an
    argument holding a key (even inside an object's str()) cannot leak. Exception and stack text are
    rendered and redacted into `exc_text` / `stack_info`, which formatters reuse as they are.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not break logging, nor leak args
            message = f"{record.msg!s} (unformattable args: {record.args!r})"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if isinstance(value, str):
                setattr(record, name, redact(value))
        return True


class LineFormatter(logging.Formatter):
    """Render `message` + context suffix, prefixed for journald or with a UTC timestamp."""

    def __init__(self, *, journald: bool):
        super().__init__()
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage() + _context_suffix(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text += "\n" + record.exc_text
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        text = redact(text)
        if self.journald:
            # journald stores each line as its own entry: give every line the priority prefix so
            # a traceback stays at the level of the event it belongs to.
            prefix = _syslog_prefix(record.levelno)
            return "\n".join(prefix + line for line in text.split("\n"))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        return f"{stamp} {record.levelname} {record.name}: {text}"


def _context_suffix(record: logging.LogRecord) -> str:
    parts = []
    for name in CONTEXT_FIELDS:
        value = getattr(record, name, None)
        if value is None:
            continue
        shown = str(value)
        if not shown or any(c.isspace() for c in shown) or '"' in shown:
            shown = '"' + shown.replace("\\", "\\\\").replace('"', '\\"') + '"'
        parts.append(f"{name}={shown}")
    return (" " + " ".join(parts)) if parts else ""


def _level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    try:
        return LEVELS[level.strip().lower()]
    except KeyError:
        raise UsageError(
            f"unknown log level {level!r}; use one of: {', '.join(LEVELS)}"
        ) from None


def setup_logging(
    level: str | int = "info",
    *,
    stream: TextIO | None = None,
    journald: bool | None = None,
) -> logging.Handler:
    """Send keyward's logs (and everyone else's) to `stream` at `level`; return the handler.

    `journald=None` means: detect it from `$JOURNAL_STREAM`. Calling again replaces the handler
    installed before, so tests and re-configuration do not duplicate lines. Raise UsageError for an
    unknown level name.
    """
    levelno = _level_number(level)
    if journald is None:
        journald = bool(os.environ.get("JOURNAL_STREAM"))
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(LineFormatter(journald=journald))
    handler.addFilter(RedactingFilter())
    setattr(handler, _HANDLER_MARK, True)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(levelno)

    for name, quiet_level in _ALWAYS_QUIET.items():
        logging.getLogger(name).setLevel(quiet_level)
    for name, quiet_level in _QUIET_UNLESS_DEBUG.items():
        logging.getLogger(name).setLevel(logging.NOTSET if levelno <= logging.DEBUG else quiet_level)
    return handler
