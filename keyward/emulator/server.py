"""The HTTP front end: parse a request, apply injected faults, route it, write JSON.

All services share one host:port and are told apart by path, as a single `api_endpoint` override
in google-api-python-client expects. Every answer is `application/json; charset=UTF-8`. The
request log never holds a query string (Gemini keys travel in `?key=`) nor any header.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from keyward.emulator import errors, faults
from keyward.emulator.errors import RpcError
from keyward.emulator.routing import Request, Route
from keyward.emulator.state import State

log = logging.getLogger(__name__)

ADMIN = "_emulator"
_MALFORMED = b'{"name": "operations/truncated", "done": tr'


def normalize_path(raw: str) -> str:
    """Unquote each path segment, keeping an encoded slash inside a segment as `%2F`."""
    return "/".join(unquote(s).replace("/", "%2F") for s in raw.split("/"))


class Router:
    """Finds the route for a request and turns its outcome into (status, bytes)."""

    def __init__(self, state: State, routes: list[Route]):
        self.state = state
        self.routes = routes

    def dispatch(self, request: Request) -> tuple[int, bytes]:
        matched = [(r, m) for r in self.routes if (m := r.pattern.fullmatch(request.path))]
        chosen = next(((r, m) for r, m in matched if r.method == request.method), None)
        if chosen is None:
            what = "Method not allowed" if matched else "Not found"
            return _encode(*_error(RpcError("NOT_FOUND", f"{what}: {request.method} "
                                                         f"{request.path}")))
        route, match = chosen
        if route.service != ADMIN:
            fault = faults.take(self.state, route.service, request.path)
            if fault is not None:
                if fault.latency_ms:
                    time.sleep(fault.latency_ms / 1000.0)  # the delay is the fault itself
                if fault.malformed:
                    return 200, _MALFORMED
                if fault.status:
                    return _encode(*_error(errors.fault(fault.status)))
        try:
            return _encode(*route.handler(request, match))
        except RpcError as exc:
            return _encode(*_error(exc))
        except Exception:  # a bug in the emulator must still answer like a server
            log.exception("emulator handler failed for %s %s", request.method, request.path)
            return _encode(*_error(RpcError("INTERNAL", "Internal error encountered.")))


def _error(exc: RpcError) -> tuple[int, Any]:
    return exc.code, exc.body()


class EventStream(list):
    """A handler's reply sent as server-sent events, one `data:` line per item (what Gemini does
    for `streamGenerateContent?alt=sse`, which google-genai asks for)."""


class _EventStreamBytes(bytes):
    """Encoded server-sent events: `_reply` sends them as text/event-stream."""


def _encode(status: int, body: Any) -> tuple[int, bytes]:
    if isinstance(body, EventStream):
        return status, _EventStreamBytes(b"".join(b"data: " + json.dumps(item).encode("utf-8") + b"\r\n\r\n"
                                                  for item in body))
    return status, json.dumps(body, indent=2).encode("utf-8")


def make_handler(router: Router) -> type[BaseHTTPRequestHandler]:
    """Return a request handler class bound to `router`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ESF"
        sys_version = ""

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in separate writes; without this, Nagle's algorithm and
            # delayed ACKs add ~40 ms to every keep-alive response.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = Request(
                method=self.command, path=normalize_path(parts.path),
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                client_ip=self.client_address[0])
            if raw.strip():
                try:
                    request.body = json.loads(raw)
                except ValueError:
                    self._reply(*_encode(*_error(errors.invalid_argument(
                        "Invalid JSON payload received. Unexpected token."))))
                    return
            self._reply(*router.dispatch(request))

        def _reply(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            kind = "text/event-stream" if isinstance(payload, _EventStreamBytes) else "application/json; charset=UTF-8"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Vary", "Origin, X-Origin, Referer")
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            # The default writes the request line, query string and all, to stderr.
            return

        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            log.debug("%s %s -> %s", self.command, urlsplit(self.path).path, code)

    return Handler


class Server(ThreadingHTTPServer):
    """A threading HTTP server whose worker threads never block interpreter exit."""

    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:
        # A client that gave up (a timeout during injected latency) is normal here, not an error.
        import sys

        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)
