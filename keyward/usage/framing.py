"""Reading the ingest socket's lines with a byte limit per line and a deadline per call.

A reader that waits on `readline()` for ever or buffers whatever a client sends is how one idle
or hostile client holds a thread, a descriptor and memory indefinitely; these bounds end such a
connection instead (see `keyward.usage.ingest`).
"""

from __future__ import annotations

import socket
import time

from keyward.errors import UsageError
from keyward.usage import wire


class Closed(Exception):
    """The connection must end now (timed out, oversized); `reply` is sent first when set."""

    def __init__(self, why: str, reply: bytes | None = None):
        super().__init__(why)
        self.reply = reply


def too_large(what: str) -> Closed:
    return Closed(what, wire.error_reply(UsageError(
        f"{what}: a line holds at most {wire.MAX_LINE} bytes, a batch at most "
        f"{wire.MAX_BATCH} lines and {wire.MAX_BATCH_BYTES} bytes; send smaller batches"), None))


class LineReader:
    """Reads lines from a socket with a byte limit per line and a deadline per call."""

    def __init__(self, conn: socket.socket):
        self.conn = conn
        self.buf = bytearray()
        self.started = 0.0

    def readline(self, limit: int, deadline: float, then: float | None = None) -> bytes:
        """Return one line (with its newline), or the rest at end of input (b"" if none).

        Raise Closed when the line exceeds `limit` bytes or `deadline` (monotonic) passes. With
        `then`, the deadline becomes `then` seconds after the first byte (kept in `started`).
        """
        start = 0
        self.started = time.monotonic()
        if then is not None and self.buf:
            deadline = self.started + then
        while True:
            end = self.buf.find(b"\n", start)
            if end >= 0:
                if end + 1 > limit:
                    raise too_large("line too long")
                line = bytes(self.buf[:end + 1])
                del self.buf[:end + 1]
                return line
            if len(self.buf) > limit:
                raise too_large("line too long")
            start = len(self.buf)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Closed("too slow")
            self.conn.settimeout(remaining)
            try:
                chunk = self.conn.recv(65536)
            except TimeoutError:
                raise Closed("too slow") from None
            if not chunk:
                line = bytes(self.buf)
                self.buf.clear()
                return line
            if then is not None and not self.buf:
                self.started = time.monotonic()
                deadline = self.started + then
            self.buf += chunk
