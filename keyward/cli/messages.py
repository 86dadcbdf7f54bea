"""How a failure reaches the user: one redacted line and an exit code (a traceback only with --debug).

Shared by the click commands (`keyward.cli.app`) and the paths that answer without click
(`keyward status`), so an error reads the same whichever path met it.
"""

from __future__ import annotations

from keyward.errors import KeywardError
from keyward.keystrings import redact


def error_line(exc: BaseException) -> tuple[str, int]:
    """Return the line that reports `exc` and the exit code it ends the command with."""
    if isinstance(exc, KeywardError):
        return f"keyward: error: {redact(str(exc))}", exc.exit_code
    from keyward.errors import InternalError
    from keyward.failures import named

    error = named(exc)  # every other escape gets a name here
    hint = "\n  (run with --debug for the traceback)" if isinstance(error, InternalError) else ""
    return f"keyward: error: {redact(str(error))}{hint}", error.exit_code
