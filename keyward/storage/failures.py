"""Saying what is wrong with a database in words an operator can act on.

SQLAlchemy's exception class ("OperationalError") says little; the driver's first line and a few
known cases (server down, database missing, driver not installed, file not a database) say it.
"""

from __future__ import annotations

_HINTS = (
    ("connection refused", "the database server refused the connection: is it running, and on that host and port?"),
    ("could not translate host name", "the database host name does not resolve"),
    ("does not exist", None),  # PostgreSQL names the database or role itself: keep its words
    ("password authentication failed", "the database refused the user name or password"),
    ("file is not a database", "the file is not a SQLite database (or it is corrupt)"),
    ("database disk image is malformed", "the SQLite database file is corrupt"),
    ("unable to open database file", "SQLite cannot open the file: check the directory exists and is writable"),
    ("database is locked", "the SQLite database stayed locked by another writer past the busy timeout"),
    ("out of range", None),
)


def describe_database_error(exc: BaseException) -> str:
    """Return one line saying what went wrong, without the SQL statement or its parameters."""
    from keyward.keystrings import redact

    name = exc.__class__.__name__
    if name == "NoSuchModuleError" or isinstance(exc, ModuleNotFoundError):
        text = str(exc)
        scheme = text.rsplit(":", 1)[-1].strip() if ":" in text else text
        return (f"no database driver for {scheme!r}: keyward works with sqlite:/// and "
                "postgresql:// URLs (and psycopg for PostgreSQL)")
    orig = getattr(exc, "orig", None)
    first = str(orig if orig is not None else exc).strip().splitlines()
    first_line = first[0][:300] if first else name
    lowered = first_line.lower()
    for needle, hint in _HINTS:
        if needle in lowered:
            return redact(hint or first_line) if hint is None else f"{hint} ({redact(first_line)})"
    return redact(f"{first_line} ({name})")
