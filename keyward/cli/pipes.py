"""A reader that leaves early ends keyward quietly, as it ends `cat` or `grep`.

`keyward pool list | head -1` or `keyward status --watch | head` closes the pipe while keyward
still writes. Python ignores SIGPIPE, so the write raises BrokenPipeError, which would surface as an
"internal error" (and, at exit, as a second complaint while flushing stdout). Restoring SIGPIPE's
default action is no answer: keyward also writes to sockets (reports, the daemon's status and
ingest servers), where a peer that leaves must be an error to handle, not a fatal signal.

So only standard output is guarded: its lowest layer turns EPIPE into `StdoutClosed`, a
SystemExit that passes every `except Exception`, and the entry point exits with status 141, what
a shell shows for a process ended by SIGPIPE, printing nothing.
"""

from __future__ import annotations

import io
import os
import sys

EXIT_PIPE_CLOSED = 128 + 13  # as if killed by SIGPIPE


class StdoutClosed(SystemExit):
    """Standard output's reader went away."""

    def __init__(self) -> None:
        super().__init__(EXIT_PIPE_CLOSED)


class _GuardedFd(io.RawIOBase):
    def __init__(self, fd: int):
        super().__init__()
        self._fd = fd

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def write(self, data) -> int:
        try:
            return os.write(self._fd, data)
        except BrokenPipeError:
            raise StdoutClosed() from None


def guard_stdout() -> None:
    """Replace sys.stdout with the same stream whose EPIPE raises StdoutClosed (once per process)."""
    out = sys.stdout
    if out is None or isinstance(getattr(getattr(out, "buffer", None), "raw", None), _GuardedFd):
        return
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test runner's capture)
        return
    out.flush()
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(_GuardedFd(fd)), encoding=out.encoding,
                                  errors=out.errors, line_buffering=out.line_buffering)


def quiet_exit() -> None:
    """Point fd 1 at /dev/null, so the final flush at exit finds a reader, and leave with 141."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    raise SystemExit(EXIT_PIPE_CLOSED)
