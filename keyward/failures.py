"""The one place where an exception that escaped a command or a daemon job gets a name.

Known third-party failures become the KeywardError that says what happened (input nested too
deeply, a file that cannot be read, a database that cannot be reached); anything else becomes an
InternalError. Every message is redacted: a key string never leaves through this door, whatever
the exception quoted.
"""

from __future__ import annotations

from keyward.errors import InternalError, KeywardError, StorageError, UsageError
from keyward.keystrings import redact

MAX_MESSAGE = 600


def _short(text: str) -> str:
    text = redact(text)
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "…"


def named(exc: BaseException) -> KeywardError:
    """Return the KeywardError that names `exc` (itself when it is one)."""
    if isinstance(exc, KeywardError):
        return exc
    if isinstance(exc, RecursionError):
        return UsageError("the input is nested too deeply to read")
    if isinstance(exc, MemoryError):
        return InternalError("out of memory")
    if isinstance(exc, UnicodeError):
        return UsageError(f"the input is not valid UTF-8 text ({exc.__class__.__name__})")
    module = type(exc).__module__ or ""
    if module.startswith("sqlalchemy") or module.startswith(("psycopg", "sqlite3")):
        from keyward.storage.failures import describe_database_error

        return StorageError(_short(describe_database_error(exc)))
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return InternalError(_short(f"{exc.strerror or exc.__class__.__name__}{where}"))
    return InternalError(_short(f"internal error: {exc.__class__.__name__}: {exc}"))
