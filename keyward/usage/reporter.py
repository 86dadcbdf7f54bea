"""Reporting usage from a program: to the daemon's ingest socket when it answers, else straight to
the database. A report is never lost: it is recorded by the daemon (which answers only after
COMMIT) or, when no daemon listens, by this process in its own transaction.

One case can count a report twice rather than lose it: the daemon committed but its answer never
arrived (it was killed in between); the report is then also written directly. Counting too much
only makes keyward switch projects earlier, which is the safe side.

The configuration, the open connection and the database are kept per process (reopened after a
fork), so a program that reports after every call pays for them once.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import struct
import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

from keyward.errors import KeywardError, StorageError
from keyward.usage import wire
from keyward.usage.reports import ErrorReport, Report, UsageReport, from_json, to_json

if TYPE_CHECKING:
    from keyward.config import Config
    from keyward.context import Context
    from keyward.usage.spool import Spool

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2.0
REPLY_TIMEOUT = 30.0

_lock = threading.Lock()
_state: dict[str, Any] = {"configs": {}, "conns": {}, "contexts": {}, "paths": {}, "spools": {}}
_CONFIG_ENV = ("KEYWARD_CONFIG", "XDG_CONFIG_HOME", "HOME")  # what find_config_path reads
_SPOOL_ENV = ("KEYWARD_SPOOL_DIR", "XDG_STATE_HOME", "HOME")  # what spool_dir reads


def _cache() -> dict[str, Any]:
    return _state


def _forget_after_fork() -> None:
    """Never carry a socket or a database connection into a forked child: it would share them
    with its parent. (Dropped, not closed: they are still the parent's.) A hook rather than a
    getpid() per report, which is a system call."""
    global _lock
    _lock = threading.Lock()  # another thread of the parent may have held it at the fork
    _state.update(configs={}, conns={}, contexts={}, paths={}, spools={})


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def close() -> None:
    """Close the cached daemon connections and databases of this process (also run at exit)."""
    with _lock:
        cache = _cache()
        for conn in cache["conns"].values():
            conn.close()
        for _config_obj, ctx in cache["contexts"].values():
            ctx.close()
        cache.update(conns={}, contexts={}, configs={}, paths={}, spools={})


atexit.register(close)


def _config(config_path: str | None) -> "Config":
    """The configuration, found and read once per process and environment: a program reporting
    after every call should not search for its file (a few stat calls) every time."""
    cache = _cache()
    where = (config_path, *(os.environ.get(name) for name in _CONFIG_ENV))
    path = cache["paths"].get(where, False)
    if path is False:
        from keyward.config import find_config_path

        path = cache["paths"][where] = find_config_path(config_path)
    if path not in cache["configs"]:
        from keyward.config import load_config

        cache["configs"][path] = load_config(path)
    return cache["configs"][path]


def _spool() -> "Spool":
    from keyward.usage.spool import Spool

    spools = _cache()["spools"]
    where = tuple(os.environ.get(name) for name in _SPOOL_ENV)
    if where not in spools:
        spools[where] = Spool()
    return spools[where]


def _context(config: "Config") -> "Context":
    from keyward.context import Context

    contexts = _cache()["contexts"]
    if id(config) not in contexts:
        contexts[id(config)] = (config, Context(config))
    return contexts[id(config)][1]


def send_usage(*, pool: str | None = None, key: str | None = None, key_id: str | None = None,
               model: str | None = None, requests: int = 1, input_tokens: int = 0,
               output_tokens: int = 0, config_path: str | None = None) -> None:
    """Record usage (see `keyward.client.report`). Raise UsageError for bad values, NotFound for an
    unknown pool or key."""
    send_reports([UsageReport(pool, key, key_id, model, requests, input_tokens, output_tokens)],
                 config_path=config_path)


def send_error(http_status: int, body: Any, *, pool: str | None = None, key: str | None = None,
               key_id: str | None = None, model: str | None = None,
               config_path: str | None = None) -> None:
    """Record a refused Gemini call exactly as it came (see `keyward.client.report_error`)."""
    from keyward.quota.signals import read_body

    body = read_body(body)  # JSON when it is, else text: parse_error reads text as unreadable
    send_reports([ErrorReport(http_status, body, pool, key, key_id, model)], config_path=config_path)


def send_reports(reports: list[Report], *, config_path: str | None = None,
                 config: "Config | None" = None,
                 context: "Callable[[], Context] | None" = None,
                 spool: "Spool | None" = None) -> dict[str, Any]:
    """Deliver reports; return the reply ({"accepted": N, "results": [...], "via": …}).

    Reports are validated here first, so a bad value fails the same way with or without a daemon.
    When neither the daemon nor the database takes them, they go to this user's spool
    ("via": "spool"; see keyward.usage.spool) and the next delivery that succeeds sends them on.
    Raise SpoolError only when even the spool cannot be written.
    """
    # Checked as the daemon would check them; the key string stays in this process (for the
    # direct path's masked messages) and only its fingerprint goes on the wire.
    reports = [_checked(r) for r in reports]
    config = config or _config(config_path)
    spool = spool or _spool()
    try:
        reply = _deliver(reports, config, context)
    except (StorageError, OSError) as exc:
        spool.append(reports)
        log.warning("no keyward daemon answered and the database cannot be written (%s); %d report(s) "
                    "kept in %s until one can", exc, len(reports), spool.path)
        return {"ok": True, "accepted": len(reports), "results": [], "via": "spool"}
    if spool.pending():
        try:
            spool.deliver(lambda batch: _deliver(batch, config, context))
        except (KeywardError, OSError) as exc:
            log.warning("spooled reports in %s not delivered yet: %s", spool.path, exc)
    return reply


def _checked(report: Report) -> Report:
    checked = from_json(to_json(report))
    return checked if report.key is None else replace(checked, key=report.key)


def _deliver(reports: list[Report], config: "Config",
             context: "Callable[[], Context] | None") -> dict[str, Any]:
    """To the daemon, else to the database; raise StorageError when the database cannot be used."""
    reply = _via_daemon(config, reports)
    if reply is not None:
        if not reply.get("ok"):
            if reply.get("kind") != "storage":
                wire.raise_reply(reply)
            log.warning("the daemon could not record the reports (%s); writing them directly",
                        reply.get("error"))
        else:
            return {**reply, "via": "daemon"}
    ctx = context() if context is not None else _context(config)
    from keyward.usage.accounting import record_batch

    try:
        result = record_batch(ctx, reports)
    except StorageError as exc:
        # A reader of the system service may write to its ingest socket but not its database: say
        # that the daemon did not answer, which is what to fix, not only that a file was refused.
        raise StorageError(f"no keyward daemon took the report (no ingest socket answered at "
                           f"{config.daemon.ingest_socket or 'none configured'}), and recording it "
                           f"directly failed: {exc}; is the keyward service running?") from None
    results = [{"line": i + 1, "kind": s.kind, "reason": s.reason, "key_id": result.key_ids[i]}
               for i, s in enumerate(result.signals) if s is not None]
    return {"ok": True, "accepted": len(reports), "results": results, "via": "database"}


def _endpoints(config: "Config") -> list[tuple[int, Any]]:
    out: list[tuple[int, Any]] = []
    sock_path = config.daemon.ingest_socket
    if sock_path is not None:
        out.append((socket.AF_UNIX, str(sock_path)))
    if config.daemon.ingest_tcp:
        from keyward.usage.ingest import parse_tcp

        try:
            host, port = parse_tcp(config.daemon.ingest_tcp)
        except KeywardError:
            return out
        out.append((socket.AF_INET6 if ":" in host else socket.AF_INET, (host, port)))
    return out


def _via_daemon(config: "Config", reports: list[Report]) -> dict[str, Any] | None:
    """Send to the daemon; return its reply, or None when no daemon answered (fall back)."""
    payload = wire.encode_batch(reports)
    with _lock:
        conns = _cache()["conns"]
        for family, address in _endpoints(config):
            for attempt in range(2):  # a cached connection may have been closed by a restart
                conn = conns.get(address)
                fresh = conn is None
                # No socket file: no daemon (False, not an error, when unreadable). Checked only
                # when connecting: a kept connection costs no system call besides send and receive.
                if fresh and family == socket.AF_UNIX and not os.path.exists(address):
                    break
                try:
                    if conn is None:
                        conn = socket.socket(family, socket.SOCK_STREAM)
                        conn.settimeout(CONNECT_TIMEOUT)
                        conn.connect(address)
                        if family != socket.AF_UNIX:
                            _authenticate(conn, config)
                        _reply_timeout(conn)
                        conns[address] = conn
                    conn.sendall(payload)
                    line = _read_line(conn)
                    reply = json.loads(line)
                    if not isinstance(reply, dict):
                        raise ValueError("the answer is not a JSON object")
                    return reply
                except _NotTheDaemon as exc:
                    conns.pop(address, None)
                    conn.close()
                    log.warning("ingest endpoint %s:%s: %s; recording directly", *address, exc)
                    break
                except (OSError, ValueError, RecursionError) as exc:
                    conns.pop(address, None)
                    if conn is not None:
                        conn.close()
                    if fresh or attempt:
                        log.debug("ingest endpoint %s did not answer: %s", address, exc)
                        break
    return None


def _reply_timeout(conn: socket.socket) -> None:
    """Bound the wait for an answer in the kernel: a socket with a Python timeout polls before
    every send and receive, two more system calls per report than a blocking socket needs."""
    try:
        conn.settimeout(None)
        timeval = struct.pack("ll", int(REPLY_TIMEOUT), 0)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
    except (OSError, struct.error):  # no such option here: the portable (slower) way
        conn.settimeout(REPLY_TIMEOUT)


class _NotTheDaemon(Exception):
    """The TCP listener could not prove it holds the ingest token (or we hold none)."""


def _authenticate(conn: socket.socket, config: "Config") -> None:
    """Prove the token to the daemon and make it prove the token back; raise _NotTheDaemon if
    either side cannot. The token itself never crosses the connection."""
    from keyward.usage.token import read_token

    hello = json.loads(_read_line(conn, wire.MAX_HELLO))
    if not isinstance(hello, dict) or hello.get("keyward") != "ingest":
        raise _NotTheDaemon("the listener does not speak keyward's ingest protocol")
    nonce = hello.get("nonce")
    if not isinstance(nonce, str) or not 16 <= len(nonce) <= 64:
        raise _NotTheDaemon("the listener does not speak keyward's ingest protocol")
    token = read_token(config)
    if token is None:
        raise _NotTheDaemon("this process cannot read the ingest token (it may report only "
                            "if it may read the published key)")
    line, client_nonce = wire.client_auth(token, nonce)
    conn.sendall(line)
    reply = json.loads(_read_line(conn, wire.MAX_HELLO))
    if not wire.check_server_auth(reply, token, nonce, client_nonce):
        raise _NotTheDaemon("the listener did not prove it holds the ingest token (not the daemon)")


MAX_REPLY = 8 * 1024 * 1024  # an answer lists at most one result per error report of a batch


def _read_line(conn: socket.socket, limit: int = MAX_REPLY) -> bytes:
    chunks, size = [], 0
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("the daemon closed the connection before answering")
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n"):
            return b"".join(chunks)
        if size > limit:
            raise ConnectionError("the answer is longer than any answer of the daemon")
