"""The daemon answers `keyward status` over a Unix socket in the runtime directory.

A status command that opens the database itself pays for importing SQLAlchemy before it reads a
row, which alone is most of the 300 ms an operator's screen may take. The daemon has everything
loaded, so it builds the status (from the database, as of now: nothing is cached) and sends the
JSON text; the command prints or renders it. Without a daemon the command builds the status
itself. The socket holds no secrets (keys are masked in the status), but it is kept 0660 like the
rest of the runtime directory.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from keyward.context import Context

log = logging.getLogger(__name__)

SOCKET_NAME = "status.sock"


def socket_path(runtime_dir: str | os.PathLike[str]) -> str:
    return os.path.join(os.fspath(runtime_dir), SOCKET_NAME)


def status_text(ctx: "Context") -> str:
    """The status as `keyward status --json` prints it."""
    from keyward.status import build_status

    return json.dumps(build_status(ctx), indent=2, sort_keys=True)


class StatusServer:
    """Serve the status JSON to every connection on `path`, from a thread."""

    def __init__(self, get_ctx: Callable[[], "Context"], path: str | os.PathLike[str]):
        self.get_ctx = get_ctx
        self.path = os.fspath(path)
        self._server: socketserver.UnixStreamServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "StatusServer":
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                try:
                    body = status_text(outer.get_ctx()).encode()
                except Exception as exc:  # the client falls back to building the status itself
                    log.warning("status request failed: %s", exc)
                    return
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    # `keyward status | head`, a timeout, Ctrl-C: the client's choice, not a fault
                    log.debug("a status client left before reading the whole answer")

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        os.makedirs(os.path.dirname(self.path), mode=0o750, exist_ok=True)
        if os.path.exists(self.path):
            os.unlink(self.path)  # left by a daemon that was killed; the lock says none runs now
        self._server = Server(self.path, Handler)
        os.chmod(self.path, 0o660)
        self._thread = threading.Thread(target=self._server.serve_forever, name="keyward-status", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self._server = None


def fetch(runtime_dir: str | os.PathLike[str], timeout: float = 2.0) -> str | None:
    """Return the daemon's status JSON text, or None when no daemon answers."""
    path = socket_path(runtime_dir)
    if not os.path.exists(path):
        return None
    chunks: list[bytes] = []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            while True:
                chunk = sock.recv(1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError:
        return None
    text = b"".join(chunks).decode("utf-8", errors="replace")
    return text or None
