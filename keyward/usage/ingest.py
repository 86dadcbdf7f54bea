"""The daemon's ingest endpoint: programs in any language report usage over a local socket.

A Unix socket (mode 0660, so a group can be allowed to report) and optionally a loopback TCP port
take batches of newline-delimited JSON (format in `keyward.usage.wire`). ONE thread serves every
connection: it waits on all sockets at once (selectors, non-blocking), reads what arrived, commits
the batches completed since its last commit in ONE transaction (group commit), answers each, and
waits again. A batch with a bad report is retried alone so it never sinks the others. Effects
(republishing after a 429 or an invalid key) run on their own thread after the answer.

Why one thread: a reporter waits for each answer, so the daemon's work per report is a wake-up, a
read, a share of a commit and a write. With a thread per connection (and a writer thread) each
report also cost two thread hand-offs and the interpreter's lock passed between a dozen threads on
few cores, which cost more than the commit. While the thread commits, the next batches wait in the
kernel's socket buffers and make the next group.

Nothing a client does can exhaust the daemon: TCP clients must prove they hold the ingest token
(`keyward.usage.token`) and an HTTP request is dropped unanswered; at most MAX_CONNECTIONS are open
at once (more are closed on accept, so file descriptors stay for publishing); a batch holds at most
MAX_BATCH_BYTES and must arrive within BATCH_DEADLINE of its first byte, and a connection has at
most one batch being committed (its next bytes wait until that one is answered, so answers keep
their order); a connection idle for IDLE_TIMEOUT is closed, as is one whose client does not read
its answers (an answer that does not fit in the socket's buffer whole ends the connection); a
failing accept() pauses accepting instead of spinning.
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
from pathlib import Path
from typing import Any

from keyward.errors import KeywardError, StorageError, UsageError
from keyward.usage import effects as fx
from keyward.usage import wire
from keyward.usage.framing import too_large
from keyward.usage.reports import ErrorReport, Report

log = logging.getLogger(__name__)

GROUP_LIMIT = 5_000  # reports per group commit
IDLE_TIMEOUT = 60.0  # seconds a connection may wait between batches
BATCH_DEADLINE = 30.0  # seconds from a batch's first byte to its last
HELLO_DEADLINE = 5.0  # seconds a TCP client has to authenticate
MAX_CONNECTIONS = 256
ACCEPT_BACKOFF = (0.05, 2.0)  # first and longest pause after accept() fails (EMFILE, ENOBUFS)


class _Conn:
    """One client connection: its socket, the bytes read but not yet parsed, and the batch being
    read (or committed). Only the serving thread touches it."""

    __slots__ = ("sock", "fd", "buf", "scan", "authenticated", "nonce", "reports", "bad", "number",
                 "size", "started", "deadline", "inflight", "eof", "closed")

    def __init__(self, sock: socket.socket, tcp: bool, now: float):
        self.sock = sock
        self.fd = sock.fileno()
        self.buf = bytearray()
        self.scan = 0  # where to look for the next newline in buf
        self.authenticated = not tcp
        self.nonce = ""
        self.reports: list[Report] = []
        self.bad: bytes | None = None  # the answer when a line of this batch is bad
        self.number = self.size = 0  # lines and bytes of this batch so far
        self.started: float | None = None  # when this batch's first byte was read
        self.deadline = now + (HELLO_DEADLINE if tcp else IDLE_TIMEOUT)
        self.inflight = False  # a batch of this connection waits for its commit
        self.eof = False
        self.closed = False

    def new_batch(self) -> None:
        self.reports, self.bad, self.number, self.size, self.started = [], None, 0, 0, None


class _Pending:
    """A complete batch waiting for the group commit; `reply` is its answer once committed."""

    __slots__ = ("reports", "conn", "reply")

    def __init__(self, reports: list[Report], conn: _Conn):
        self.reports = reports
        self.conn = conn
        self.reply = b""


def _group_end(ready: list[_Pending]) -> int:
    """How many of the ready batches go in one commit: all, up to GROUP_LIMIT reports."""
    count = 0
    for i, pending in enumerate(ready):
        count += len(pending.reports)
        if count >= GROUP_LIMIT:
            return i + 1
    return len(ready)


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
    """Serve the ingest socket on one thread; `start()` binds and returns, `stop()` closes all."""

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
        self._effects: queue.Queue[fx.Effects | None] = queue.Queue()
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = -1, -1
        self._threads: list[threading.Thread] = []
        self._effects_thread: threading.Thread | None = None
        self._conns: dict[int, _Conn] = {}  # by file descriptor
        self._sel: selectors.BaseSelector | None = None
        self._next_check = 0.0  # when a connection's deadline may have passed, at the earliest
        self._accept_paused_until = 0.0
        self._pause = 0.0  # the last pause after accept() failed
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
            sock.setblocking(False)  # accept() until it would wait, from the serving thread
            self.tcp_address = sock.getsockname()[:2]
            self._listeners.append(sock)
        self._wake_r, self._wake_w = os.pipe()
        for target, name in ((self._serve_loop, "serve"), (self._effects_loop, "effects")):
            thread = threading.Thread(target=target, name=f"keyward-ingest-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._effects_thread = self._threads[-1]
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
        """Stop accepting and reading, and close everything within `timeout` seconds in all.

        A batch being committed is committed and answered first; one not yet complete is dropped
        with its connection (its reporter writes it itself). A rotation a report started is
        journaled; it need not finish here."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
        self._effects.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread is self._effects_thread and self._effects_running:
                continue  # a rotation a report started is journaled: waiting for it only delays the exit
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._threads):  # a commit outlived the timeout: cut clients off
            for conn in list(self._conns.values()):
                try:
                    conn.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for sock in self._listeners:
            sock.close()
        if self.socket_path is not None:
            try:
                self.socket_path.unlink()
            except FileNotFoundError:
                pass
        if not any(t.is_alive() for t in self._threads):
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
        sock.setblocking(False)
        return sock

    # the serving thread ------------------------------------------------------------------------

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    def _serve_loop(self) -> None:
        sel = self._sel = selectors.DefaultSelector()
        for sock in self._listeners:
            sel.register(sock, selectors.EVENT_READ, data=sock)
        sel.register(self._wake_r, selectors.EVENT_READ, data=None)
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                if self._accept_paused_until and now >= self._accept_paused_until:
                    self._accept_paused_until = 0.0
                    for sock in self._listeners:
                        sel.register(sock, selectors.EVENT_READ, data=sock)
                wait = min(1.0, max(0.0, self._next_check - now))
                if self._accept_paused_until:
                    wait = min(wait, max(0.0, self._accept_paused_until - now))
                ready: list[_Pending] = []
                for item, _ in sel.select(wait):
                    data = item.data
                    if data is None:
                        return  # woken by stop()
                    if isinstance(data, _Conn):
                        self._isolated(self._read, data, ready)
                    else:
                        self._accept(data)
                now = time.monotonic()
                if now >= self._next_check:
                    self._check_deadlines(now)
                while ready:  # a group, then what its connections had already sent after it
                    group, ready = ready[:_group_end(ready)], ready[_group_end(ready):]
                    try:
                        self._commit(group)
                    except Exception:  # unanswered, so their reporters write them themselves
                        log.error("ingest: answering a group of batches failed unexpectedly")
                        for pending in group:
                            self._close(pending.conn)
                    for pending in group:
                        self._isolated(self._after_answer, pending.conn, ready)
        except Exception:  # never a traceback: it could quote a report
            log.error("ingest: the serving thread failed unexpectedly; reports go to the database "
                      "directly until the daemon restarts", exc_info=False)
        finally:
            for conn in list(self._conns.values()):
                self._close(conn)
            sel.close()
            self._sel = None

    def _isolated(self, step, conn: _Conn, ready: list[_Pending]) -> None:
        """Run one connection's step; if it fails unexpectedly, only that connection ends."""
        try:
            step(conn, ready)
        except Exception:  # no traceback (it could quote a report)
            log.error("ingest: a connection failed unexpectedly")
            if conn.inflight:
                ready[:] = [p for p in ready if p.conn is not conn]
                conn.inflight = False
            self._close(conn)

    def _accept(self, listener: socket.socket) -> None:
        tcp = listener.family != socket.AF_UNIX
        for _ in range(64):  # take what waits, but let the connections in between
            try:
                sock, _addr = listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                # EMFILE and friends: the listener stays readable, so accepting again at once
                # would spin. Pause; the backlog keeps the waiting clients meanwhile.
                pause = min(ACCEPT_BACKOFF[1], max(ACCEPT_BACKOFF[0], self._pause * 2))
                self._pause = pause
                log.warning("ingest: accept failed (%s); pausing %.2fs", exc.strerror, pause)
                for sock in self._listeners:
                    self._sel.unregister(sock)
                self._accept_paused_until = time.monotonic() + pause
                return
            self._pause = 0.0
            if len(self._conns) >= self.max_connections:
                sock.close()  # dropped at once: its descriptor is worth more elsewhere
                continue
            sock.setblocking(False)
            now = time.monotonic()
            conn = _Conn(sock, tcp, now)
            self._conns[conn.fd] = conn
            self._sel.register(sock, selectors.EVENT_READ, data=conn)
            self._next_check = min(self._next_check, conn.deadline)
            if tcp:
                conn.nonce = wire.new_nonce()
                if not self._send(conn, wire.server_hello(conn.nonce)):
                    continue

    def _read(self, conn: _Conn, ready: list[_Pending]) -> None:
        try:
            chunk = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)  # the client went away; what it had sent and we answered is committed
            return
        if chunk:
            if conn.started is None and conn.authenticated:
                conn.started = time.monotonic()
                self._set_deadline(conn, conn.started + BATCH_DEADLINE)
            conn.buf += chunk
        else:
            conn.eof = True
        self._advance(conn, ready)

    def _after_answer(self, conn: _Conn, ready: list[_Pending]) -> None:
        conn.inflight = False
        if conn.closed:
            return
        now = time.monotonic()
        if conn.buf:
            conn.started = now
            self._set_deadline(conn, now + BATCH_DEADLINE)
        else:
            self._set_deadline(conn, now + IDLE_TIMEOUT)
        self._advance(conn, ready)

    def _set_deadline(self, conn: _Conn, deadline: float) -> None:
        conn.deadline = deadline
        if deadline < self._next_check:
            self._next_check = deadline

    def _check_deadlines(self, now: float) -> None:
        """Close connections past their deadline: a silent or slow client, a TCP client that did
        not authenticate in time (answered, unless it looks like a browser)."""
        earliest = now + IDLE_TIMEOUT
        for conn in list(self._conns.values()):
            if conn.inflight:
                continue
            if conn.deadline <= now:
                if not conn.authenticated:
                    self._refuse(conn)
                else:
                    self._close(conn)
            elif conn.deadline < earliest:
                earliest = conn.deadline
        self._next_check = earliest

    def _advance(self, conn: _Conn, ready: list[_Pending]) -> None:
        """Parse the lines read so far, up to the end of one batch (which joins `ready`)."""
        buf = conn.buf
        while not conn.inflight and not conn.closed:
            limit = wire.MAX_LINE if conn.authenticated else wire.MAX_HELLO
            end = buf.find(b"\n", conn.scan)
            if end >= 0:
                if end + 1 > limit:
                    self._too_large(conn, "line too long")
                    return
                raw = bytes(buf[:end + 1])
                del buf[:end + 1]
                conn.scan = 0
            elif len(buf) > limit:
                self._too_large(conn, "line too long")
                return
            elif conn.eof:
                raw = bytes(buf)  # the rest, then the end of input
                buf.clear()
                conn.scan = 0
                if not raw:
                    if conn.authenticated:
                        self._end_of_batch(conn, b"", ready)
                    else:
                        self._refuse(conn)
                    return
            else:
                conn.scan = len(buf)
                return
            if not conn.authenticated:
                self._authenticate(conn, raw)
            elif raw in (b"\n", b"\r\n"):
                self._end_of_batch(conn, raw, ready)
            else:
                self._line(conn, raw)

    def _line(self, conn: _Conn, raw: bytes) -> None:
        conn.number += 1
        conn.size += len(raw)
        if conn.size > wire.MAX_BATCH_BYTES or conn.number > wire.MAX_BATCH:
            self._too_large(conn, "batch too large")
            return
        if conn.bad is None:
            try:
                conn.reports.append(wire.decode_line(raw, conn.number))
            except UsageError as exc:
                conn.bad = wire.error_reply(exc, conn.number)

    def _end_of_batch(self, conn: _Conn, raw: bytes, ready: list[_Pending]) -> None:
        """A batch ended (an empty line, or `raw` b"" at end of input): queue it for the commit,
        or answer at once (a bad line, an empty batch)."""
        reports, bad = conn.reports, conn.bad
        conn.new_batch()
        if bad is not None:
            self._send(conn, bad)
        elif reports:
            conn.inflight = True
            ready.append(_Pending(reports, conn))
            return
        elif raw:
            self._send(conn, wire.ok_reply(0, []))
        if conn.eof and not conn.closed:
            if not conn.buf:
                self._close(conn)  # the client said all it had to say, and heard every answer
            return
        if not conn.closed:
            now = time.monotonic()
            if conn.buf:
                conn.started = now
            self._set_deadline(conn, now + (BATCH_DEADLINE if conn.buf else IDLE_TIMEOUT))

    def _authenticate(self, conn: _Conn, first: bytes) -> None:
        if wire.looks_like_http(first):
            self._close(conn)  # a browser's POST: not a word back
            return
        client_nonce = wire.check_client_auth(first, self._token or "", conn.nonce)
        if client_nonce is None:
            self._refuse(conn)
            return
        conn.authenticated = True
        conn.new_batch()
        if self._send(conn, wire.server_auth(self._token or "", conn.nonce, client_nonce)):
            now = time.monotonic()
            if conn.buf:
                conn.started = now
            self._set_deadline(conn, now + (BATCH_DEADLINE if conn.buf else IDLE_TIMEOUT))

    def _refuse(self, conn: _Conn) -> None:
        """End an unauthenticated TCP connection: with a word, unless it looks like HTTP."""
        if not wire.looks_like_http(bytes(conn.buf[:16])):
            self._send(conn, wire.error_reply(UsageError(
                "authentication failed: send the proof of the ingest token first "
                "(keyward.client does this)"), None))
        self._close(conn)

    def _too_large(self, conn: _Conn, what: str) -> None:
        """Answer and close: reading the rest would only give its sender more memory and time."""
        if not conn.authenticated:
            self._refuse(conn)
            return
        reply = too_large(what).reply
        if reply:
            self._send(conn, reply)
        self._close(conn)

    def _send(self, conn: _Conn, data: bytes) -> bool:
        """Write an answer without ever blocking the serving thread; close the connection and
        return False when it does not fit whole in the socket's buffer (the client is not
        reading its answers; what it sent is committed, and its reporter counts it again rather
        than lose it)."""
        if conn.closed:
            return False
        try:
            sent = conn.sock.send(data)
        except OSError:  # the client went away, or its buffer is full
            sent = -1
        if sent == len(data):
            return True
        self._close(conn)
        return False

    def _close(self, conn: _Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._conns.pop(conn.fd, None)
        if self._sel is not None:
            try:
                self._sel.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
        conn.sock.close()

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
            self._send(group[0].conn, group[0].reply)
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
            self._send(pending.conn, pending.reply)
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

