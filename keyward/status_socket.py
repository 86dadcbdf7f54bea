"""The daemon answers `keyward status` over a Unix socket in the runtime directory.

A status command that opens the database itself pays for importing SQLAlchemy before it reads a
row, which alone is most of the 300 ms an operator's screen may take. The daemon has everything
loaded, so it builds the status and sends the JSON text; the command prints or renders it. Without
a daemon the command builds the status itself. The socket holds no secrets (keys are masked in the
status), but it is kept 0660 like the rest of the runtime directory.

With ten thousand projects one build takes seconds, so the daemon answers from the last text it
built and builds a new one in the background once that is `CACHE_SECONDS` old, one at a time: a
`--watch` screen, a monitoring script and an operator asking at once cost one build, not three, and
none of them waits for it. `generated_at` in the answer says how old it is. The JSON is compact (`--pretty` indents it on the client side), because indenting ten
thousand projects costs more than building them.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
import time
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from keyward.context import Context

log = logging.getLogger(__name__)

SOCKET_NAME = "status.sock"
# How long one built status answers requests. Short enough that a change shows up on the next
# redraw of `--watch`; long enough that concurrent readers share one build.
CACHE_SECONDS = 1.0
# How long the client waits for the daemon's answer before building the status itself. A daemon busy
# building ten thousand projects still answers well before this; rebuilding in the client is slower.
FETCH_TIMEOUT = 10.0


def socket_path(runtime_dir: str | os.PathLike[str]) -> str:
    return os.path.join(os.fspath(runtime_dir), SOCKET_NAME)


def status_text(ctx: "Context") -> str:
    """The status as `keyward status --json` prints it: compact JSON, keys in schema order."""
    from keyward.status import build_status

    return json.dumps(build_status(ctx), separators=(",", ":"))


def pretty(text: str) -> str:
    """The status JSON indented with sorted keys, for `--pretty`."""
    return json.dumps(json.loads(text), indent=2, sort_keys=True)


class StatusCache:
    """The last status text, rebuilt in the background once it is `max_age` old.

    Only the first request waits for a build. Later ones get the last text at once, and an older
    than `max_age` one starts a rebuild (one at a time) for the requests after it: at ten thousand
    projects a build takes seconds, and making each caller wait for its own would make the daemon
    slower than no daemon. A failed rebuild keeps the last text and is retried by the next request.
    """

    def __init__(self, build: Callable[[], str], max_age: float = CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic,
                 spawn: Callable[[Callable[[], None]], None] | None = None):
        self._build = build
        self.max_age = max_age
        self._clock = clock
        self._spawn = spawn or _in_thread
        self._lock = threading.Lock()  # guards the fields below
        self._build_lock = threading.Lock()  # one build at a time
        self._text: str | None = None
        self._built_at = 0.0
        self._refreshing = False
        self.builds = 0

    def get(self) -> str:
        """Return the latest status text (raise what the build raises when there is none yet)."""
        with self._lock:
            text, stale = self._text, self._clock() - self._built_at >= self.max_age
            refresh = text is not None and stale and not self._refreshing
            if refresh:
                self._refreshing = True
        if text is None:
            return self._rebuild()
        if refresh:
            self._spawn(self._refresh)
            with self._lock:
                text = self._text  # fresh already when the rebuild ran inline
        return text

    def invalidate(self) -> None:
        """Forget the cached text: the next request waits for a new build."""
        with self._lock:
            self._text = None

    def _rebuild(self) -> str:
        with self._build_lock:
            with self._lock:  # a concurrent first request may have built it meanwhile
                if self._text is not None and self._clock() - self._built_at < self.max_age:
                    return self._text
            started = self._clock()
            text = self._build()
            with self._lock:
                self._text, self._built_at = text, started
                self.builds += 1
            return text

    def _refresh(self) -> None:
        try:
            self._rebuild()
        except Exception as exc:  # keep serving the last status; the next request tries again
            log.warning("status rebuild failed: %s", exc)
        finally:
            with self._lock:
                self._refreshing = False


def _in_thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="keyward-status-build", daemon=True).start()


class StatusServer:
    """Serve the status JSON to every connection on `path`, from a thread."""

    def __init__(self, get_ctx: Callable[[], "Context"], path: str | os.PathLike[str], *,
                 max_age: float = CACHE_SECONDS):
        self.get_ctx = get_ctx
        self.path = os.fspath(path)
        self.cache = StatusCache(lambda: status_text(self.get_ctx()), max_age)
        self._server: socketserver.UnixStreamServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "StatusServer":
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                try:
                    body = outer.cache.get().encode()
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

    def warm(self) -> None:
        """Build the first status now, so the first `keyward status` does not wait for it."""
        try:
            self.cache.get()
        except Exception as exc:
            log.debug("warming the status failed: %s", exc)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self._server = None


def fetch(runtime_dir: str | os.PathLike[str], timeout: float = FETCH_TIMEOUT) -> str | None:
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
