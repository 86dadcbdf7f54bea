"""The daemon's ingest endpoint: programs in any language report usage over a local socket.

A Unix socket (mode 0660, so a group can be allowed to report) and optionally a loopback TCP port
take batches of newline-delimited JSON (format in `keyward.usage.wire`). One writer thread commits
what every connection sent since its last commit in ONE transaction (group commit), then answers
each batch itself (the connection's thread is by then reading the next one); a batch with a bad
report is retried alone so it never sinks the others. Effects (republishing after a 429 or an
invalid key) run on their own thread after the answer.

Nothing a client does can exhaust the daemon: TCP clients must prove they hold the ingest token
(`keyward.usage.token`) and an HTTP request is dropped unanswered; at most MAX_CONNECTIONS are open
at once (more are closed on accept, so file descriptors stay for publishing); a batch holds at most
MAX_BATCH_BYTES and must arrive within BATCH_DEADLINE of its first byte, and a connection has at
most one batch waiting for its commit while the next is read; a connection idle for IDLE_TIMEOUT
is closed, as is one whose client does not read its answers; a failing accept() backs off instead
of spinning.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import queue
import selectors
import socket
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keyward.errors import KeywardError, StorageError, UsageError
from keyward.usage import effects as fx
from keyward.usage import wire
from keyward.usage.framing import Closed, LineReader, too_large
from keyward.usage.reports import ErrorReport, Report

log = logging.getLogger(__name__)

GROUP_LIMIT = 5_000  # reports per group commit
IDLE_TIMEOUT = 60.0  # seconds a connection may wait between batches
BATCH_DEADLINE = 30.0  # seconds from a batch's first byte to its last
HELLO_DEADLINE = 5.0  # seconds a TCP client has to authenticate
MAX_CONNECTIONS = 256
ACCEPT_BACKOFF = (0.05, 2.0)  # first and longest pause after accept() fails (EMFILE, ENOBUFS)


@dataclass
class _Pending:
    """A batch waiting for its commit; the writer answers it on `conn` itself, then sets `done`."""

    reports: list[Report]
    conn: socket.socket
    done: threading.Event = field(default_factory=threading.Event)
    reply: bytes = b""


def _answer(pending: _Pending) -> None:
    """Send a batch's answer from the thread that committed it, without ever blocking that thread.

    The answer is a line of a few dozen bytes into a socket whose client waits for it; if it does
    not fit in the socket's buffer whole, the client is not reading its answers, and the connection
    ends (what it sent is committed; its reporter then counts it again rather than lose it).
    """
    try:
        # The descriptor is non-blocking (the connection always has a timeout: see _serve); a
        # socket method would first wait up to that timeout for room in the buffer.
        sent = os.write(pending.conn.fileno(), pending.reply)
    except OSError:  # the client went away, or its buffer is full
        sent = -1
    if sent != len(pending.reply):
        try:
            pending.conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    pending.done.set()


def parse_tcp(address: str) -> tuple[str, int]:
    """Return (host, port) of a loopback "HOST:PORT"; raise UsageError otherwise."""
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    host = "127.0.0.1" if host == "localhost" else host
    try:
        if not sep or not ipaddress.ip_address(host).is_loopback or not 0 <= int(port) < 65536:
            raise ValueError
    except ValueError:
        raise UsageError(f"daemon.ingest_tcp {address!r}: expected a loopback HOST:PORT such as "
                         "127.0.0.1:8710 (reports carry key strings; they never leave the host)") from None
    return host, int(port)


class IngestServer:
    """Serve the ingest socket on threads; `start()` binds and returns, `stop()` closes all."""

    def __init__(self, ctx: Any, socket_path: Path | str | None, tcp: str | None = None, *,
                 max_connections: int = MAX_CONNECTIONS, token: str | None = None):
        self._ctx_source = ctx
        self.max_connections = max_connections
        self._token = token
        self.token_path: Path | None = None
        self.socket_path = Path(socket_path) if socket_path else None
        self.tcp = parse_tcp(tcp) if tcp else None
        self.tcp_address: tuple[str, int] | None = None
        self._listeners: list[socket.socket] = []
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._effects: queue.Queue[fx.Effects | None] = queue.Queue()
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = -1, -1
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._effects_running = False
        from keyward.usage.attribution import KnownKeys  # here: a TCP reporter imports parse_tcp

        self._known = KnownKeys()  # the writer thread's kept key lookups

    # lifecycle --------------------------------------------------------------------------------

    @property
    def ctx(self) -> Any:
        """The Context to record into, asked anew each time: a daemon's reload replaces it."""
        src = self._ctx_source
        return src() if callable(src) and not hasattr(src, "store") else src

    def start(self) -> "IngestServer":
        self.ctx.store  # open (and migrate) the database before the first report arrives
        if self.socket_path is not None:
            self._listeners.append(self._bind_unix(self.socket_path))
        if self.tcp is not None:
            if self._token is None:
                from keyward.usage.token import read_token, write_token

                self.token_path = write_token(self.ctx.config)
                self._token = read_token(self.ctx.config)
                if not self._token:
                    raise UsageError(f"ingest token {self.token_path}: written but unreadable")
            family = socket.AF_INET6 if ":" in self.tcp[0] else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(self.tcp)
            sock.listen(128)
            self.tcp_address = sock.getsockname()[:2]
            self._listeners.append(sock)
        self._wake_r, self._wake_w = os.pipe()
        for target, name in ((self._accept_loop, "accept"), (self._write_loop, "writer"),
                             (self._effects_loop, "effects")):
            thread = threading.Thread(target=target, name=f"keyward-ingest-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("ingest listening on %s", ", ".join(self.describe()))
        return self

    def config_changed(self) -> None:
        """After a reload: put the token where (and with the mode) the new configuration says,
        so clients that follow the new file sink still find it."""
        self._known.clear()  # projects may have moved to other pools
        if self.tcp is None or not self._token:
            return
        from keyward.usage.token import write_token

        try:
            self.token_path = write_token(self.ctx.config, self._token)
        except KeywardError as exc:
            log.error("ingest token not moved after the reload: %s", exc)

    def describe(self) -> list[str]:
        out = [str(self.socket_path)] if self.socket_path else []
        if self.tcp_address:
            out.append(f"{self.tcp_address[0]}:{self.tcp_address[1]}")
        return out

    @property
    def effects_busy(self) -> bool:
        """Whether a report's effects (a republish, a key replacement) are running now."""
        return self._effects_running

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, answer what was received, and close everything within `timeout`
        seconds in all (a rotation a report started is journaled; it need not finish here)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
        with self._lock:
            for conn in list(self._conns):
                try:
                    conn.shutdown(socket.SHUT_RD)
                except OSError:
                    pass
        self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        while True:  # batches that arrived after the writer's last commit: say so, don't hang
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                break
            if pending is not None:
                pending.reply = wire.error_reply(StorageError("the daemon is stopping"), None)
                _answer(pending)
        for sock in self._listeners:
            sock.close()
        if self.socket_path is not None:
            try:
                self.socket_path.unlink()
            except FileNotFoundError:
                pass
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def __enter__(self) -> "IngestServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _bind_unix(self, path: Path) -> socket.socket:
        from keyward.atomicfile import ensure_private_dir

        ensure_private_dir(path.parent, 0o750)
        if path.exists() or path.is_symlink():
            if not stat.S_ISSOCK(path.lstat().st_mode):
                raise UsageError(f"daemon.ingest_socket {path} exists and is not a socket")
            path.unlink()  # the daemon's lock guarantees no other daemon still serves it
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o117)  # never world-accessible, not even between bind and chmod
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o660)
        sock.listen(128)
        return sock

    # threads ----------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        sel = selectors.DefaultSelector()
        for sock in self._listeners:
            sel.register(sock, selectors.EVENT_READ, data=sock.family != socket.AF_UNIX)
        sel.register(self._wake_r, selectors.EVENT_READ)
        pause = 0.0
        try:
            while not self._stopping.is_set():
                for item, _ in sel.select():
                    if item.fileobj == self._wake_r:
                        return
                    try:
                        conn, _addr = item.fileobj.accept()
                    except OSError as exc:
                        # EMFILE and friends: the listener stays readable, so retrying at once
                        # would spin. Back off; the backlog keeps the waiting clients meanwhile.
                        pause = min(ACCEPT_BACKOFF[1], max(ACCEPT_BACKOFF[0], pause * 2))
                        log.warning("ingest: accept failed (%s); pausing %.2fs", exc.strerror, pause)
                        if self._stopping.wait(pause):
                            return
                        continue
                    pause = 0.0
                    with self._lock:
                        full = len(self._conns) >= self.max_connections
                        if not full:
                            self._conns.add(conn)
                    if full:
                        conn.close()  # dropped at once: its descriptor is worth more elsewhere
                        continue
                    try:
                        threading.Thread(target=self._serve, args=(conn, item.data), daemon=True,
                                         name="keyward-ingest-conn").start()
                    except RuntimeError:  # no thread could be started
                        with self._lock:
                            self._conns.discard(conn)
                        conn.close()
        finally:
            sel.close()

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._conns)

    def _serve(self, conn: socket.socket, tcp: bool) -> None:
        """Read batches and queue them; the writer answers each after its commit. A client that
        waits for each answer finds this thread already reading its next batch (one thread wake
        per batch, not two). At most one batch per connection is queued at a time, and nothing
        else is sent (nor the connection closed) before its answer went out, so answers stay in
        order."""
        queued: _Pending | None = None
        try:
            with conn:
                conn.settimeout(IDLE_TIMEOUT)  # from here on the descriptor is non-blocking
                try:
                    reader = LineReader(conn)
                    if tcp and not self._authenticate(conn, reader):
                        return
                    while True:
                        batch = self._one_batch(reader)
                        if queued is not None:
                            queued.done.wait()
                            queued = None
                        if batch is None:
                            return
                        if isinstance(batch, bytes):
                            conn.sendall(batch)
                            continue
                        queued = batch
                        self._queue.put(batch)
                except Closed as exc:
                    if queued is not None:
                        queued.done.wait()
                        queued = None
                    if exc.reply:
                        conn.settimeout(1.0)
                        conn.sendall(exc.reply)
                finally:
                    if queued is not None:  # never close the socket under the writer's answer
                        queued.done.wait()
        except OSError:
            return  # the client went away; what it had sent and we answered is committed
        except Exception:  # no traceback (it could quote a report); the connection just ends
            log.error("ingest: a connection failed unexpectedly")
        finally:
            with self._lock:
                self._conns.discard(conn)

    def _authenticate(self, conn: socket.socket, reader: LineReader) -> bool:
        nonce = wire.new_nonce()
        conn.sendall(wire.server_hello(nonce))
        refused = wire.error_reply(UsageError(
            "authentication failed: send the proof of the ingest token first "
            "(keyward.client does this)"), None)
        try:
            first = reader.readline(wire.MAX_HELLO, time.monotonic() + HELLO_DEADLINE)
        except Closed:
            if wire.looks_like_http(bytes(reader.buf[:16])):
                return False
            raise Closed("no authentication", refused) from None
        if wire.looks_like_http(first):
            return False  # a browser's POST: not a word back
        client_nonce = wire.check_client_auth(first, self._token or "", nonce)
        if client_nonce is None:
            conn.sendall(refused)
            return False
        conn.sendall(wire.server_auth(self._token or "", nonce, client_nonce))
        return True

    def _one_batch(self, reader: LineReader) -> "_Pending | bytes | None":
        """Read one batch and return it to be committed, or the answer to send at once (a bad
        line, an empty batch); None at end of input with nothing read.

        Raise Closed (the connection ends) when the batch is too large or too slow: reading the
        rest of it would only give its sender more of our memory and time.
        """
        reports: list[Report] = []
        bad: bytes | None = None
        number, size = 0, 0
        raw = reader.readline(wire.MAX_LINE, time.monotonic() + IDLE_TIMEOUT, then=BATCH_DEADLINE)
        deadline = reader.started + BATCH_DEADLINE
        while raw and raw not in (b"\n", b"\r\n"):
            number += 1
            size += len(raw)
            if size > wire.MAX_BATCH_BYTES or number > wire.MAX_BATCH:
                raise too_large("batch too large")
            if bad is None:
                try:
                    reports.append(wire.decode_line(raw, number))
                except UsageError as exc:
                    bad = wire.error_reply(exc, number)
            raw = reader.readline(wire.MAX_LINE, deadline)
        if bad is not None:
            return bad
        if not reports:
            return None if not raw else wire.ok_reply(0, [])
        return _Pending(reports, reader.conn)

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._effects.put(None)
                return
            group, count = [first], len(first.reports)
            while count < GROUP_LIMIT:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                group.append(nxt)
                count += len(nxt.reports)
            self._commit(group)

    def _commit(self, group: list[_Pending], retried: bool = False) -> None:
        from keyward.usage.accounting import record_batch

        effects = fx.Effects()
        ctx = self.ctx
        self._known.bind(ctx.store)
        try:
            result = record_batch(ctx, [r for p in group for r in p.reports],
                                  run_effects=False, pending=effects, known=self._known)
        except Exception as exc:
            self._known.clear()  # a kept lookup may be what failed (its key removed since)
            if len(group) > 1 or not retried:  # find the batch at fault, with fresh lookups;
                for pending in group:  # the others still commit
                    self._commit([pending], retried=True)
                return
            group[0].reply = self._failure(exc)
            _answer(group[0])
            return
        offset = 0
        for pending in group:
            results = []
            for i, report in enumerate(pending.reports):
                signal = result.signals[offset + i]
                if isinstance(report, ErrorReport) and signal is not None:
                    results.append({"line": i + 1, "kind": signal.kind, "reason": signal.reason,
                                    "key_id": result.key_ids[offset + i]})
            offset += len(pending.reports)
            pending.reply = wire.ok_reply(len(pending.reports), results)
            _answer(pending)
        if effects:
            self._effects.put(effects)

    def _failure(self, exc: Exception) -> bytes:
        if isinstance(exc, KeywardError):
            index = getattr(exc, "report_index", None)
            return wire.error_reply(exc, None if index is None else index + 1)
        from keyward.keystrings import redact

        log.error("recording an ingest batch failed: %s: %s", exc.__class__.__name__, redact(str(exc)))
        return wire.error_reply(StorageError(f"recording failed: {exc.__class__.__name__}"), None)

    def _effects_loop(self) -> None:
        while True:
            effects = self._effects.get()
            if effects is None:
                return
            if self._stopping.is_set():
                continue  # stopping: what is left is journaled and resumes at the next start
            self._effects_running = True
            try:
                fx.run(self.ctx, effects)
            finally:
                self._effects_running = False

