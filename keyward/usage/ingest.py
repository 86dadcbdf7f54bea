"""The daemon's ingest endpoint: programs in any language report usage over a local socket.

A Unix socket (mode 0660, so a group can be allowed to report) and optionally a loopback TCP port
take batches of newline-delimited JSON (format in `keyward.usage.wire`). One writer thread commits
what every connection sent since its last commit in ONE transaction (group commit), then answers
each batch; a batch with a bad report is retried alone so it never sinks the others. Effects
(republishing after a 429 or an invalid key) run on their own thread after the answer.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keyward.errors import KeywardError, StorageError, UsageError
from keyward.usage import effects as fx
from keyward.usage import wire
from keyward.usage.reports import ErrorReport, Report

log = logging.getLogger(__name__)

GROUP_LIMIT = 5_000  # reports per group commit
IDLE_TIMEOUT = 300.0


@dataclass
class _Pending:
    reports: list[Report]
    done: threading.Event = field(default_factory=threading.Event)
    reply: bytes = b""


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

    def __init__(self, ctx: Any, socket_path: Path | str | None, tcp: str | None = None):
        self._ctx_source = ctx
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

    def describe(self) -> list[str]:
        out = [str(self.socket_path)] if self.socket_path else []
        if self.tcp_address:
            out.append(f"{self.tcp_address[0]}:{self.tcp_address[1]}")
        return out

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, answer what was received, and close everything."""
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
        for thread in self._threads:
            thread.join(timeout)
        while True:  # batches that arrived after the writer's last commit: say so, don't hang
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                break
            if pending is not None:
                pending.reply = wire.error_reply(StorageError("the daemon is stopping"), None)
                pending.done.set()
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
        path.parent.mkdir(parents=True, exist_ok=True)
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
            sel.register(sock, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._stopping.is_set():
                for item, _ in sel.select():
                    if item.fileobj == self._wake_r:
                        return
                    try:
                        conn, _addr = item.fileobj.accept()
                    except OSError:
                        continue
                    threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                     name="keyward-ingest-conn").start()
        finally:
            sel.close()

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)
        conn.settimeout(IDLE_TIMEOUT)
        try:
            with conn, conn.makefile("rb") as reader:
                while True:
                    reply = self._one_batch(reader)
                    if reply is None:
                        return
                    conn.sendall(reply)
        except OSError:
            return  # the client went away; what it had sent and we answered is committed
        finally:
            with self._lock:
                self._conns.discard(conn)

    def _one_batch(self, reader) -> bytes | None:
        """Read one batch and return its reply; None at end of input with nothing read."""
        reports: list[Report] = []
        bad: bytes | None = None
        number = 0
        while True:
            raw = reader.readline(wire.MAX_LINE + 1)
            if not raw or raw in (b"\n", b"\r\n"):
                break
            number += 1
            if bad is not None:
                continue  # read the rest of the bad batch so the next batch starts clean
            if len(raw) > wire.MAX_LINE or number > wire.MAX_BATCH:
                bad = wire.error_reply(UsageError("line too long or batch too large"), number)
                continue
            try:
                reports.append(wire.decode_line(raw, number))
            except UsageError as exc:
                bad = wire.error_reply(exc, number)
        if bad is not None:
            return bad
        if not reports:
            return None if not raw else wire.ok_reply(0, [])
        pending = _Pending(reports)
        self._queue.put(pending)
        pending.done.wait()
        return pending.reply

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

    def _commit(self, group: list[_Pending]) -> None:
        from keyward.usage.accounting import record_batch

        effects = fx.Effects()
        try:
            result = record_batch(self.ctx, [r for p in group for r in p.reports],
                                  run_effects=False, pending=effects)
        except Exception as exc:
            if len(group) > 1:  # find the batch at fault; the others still commit together-ish
                for pending in group:
                    self._commit([pending])
                return
            group[0].reply = self._failure(exc)
            group[0].done.set()
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
            pending.done.set()
        if effects:
            self._effects.put(effects)

    def _failure(self, exc: Exception) -> bytes:
        if isinstance(exc, KeywardError):
            index = getattr(exc, "report_index", None)
            return wire.error_reply(exc, None if index is None else index + 1)
        log.exception("recording an ingest batch failed")
        return wire.error_reply(StorageError(f"recording failed: {exc.__class__.__name__}"), None)

    def _effects_loop(self) -> None:
        while True:
            effects = self._effects.get()
            if effects is None:
                return
            fx.run(self.ctx, effects)

