"""A raw client of the ingest socket for tests: speaks the wire format by hand, so the tests check
the protocol itself rather than keyward's own reporter."""

from __future__ import annotations

import json
import socket

from keyward.usage import wire


def read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def connect(address, family=socket.AF_INET, token: str | None = None) -> socket.socket:
    """Connect; over TCP with a token, authenticate first (both ways)."""
    conn = socket.socket(family, socket.SOCK_STREAM)
    conn.settimeout(10)
    conn.connect(address)
    if token is not None:
        hello = json.loads(read_line(conn))
        line, mine = wire.client_auth(token, hello["nonce"])
        conn.sendall(line)
        reply = json.loads(read_line(conn))
        assert wire.check_server_auth(reply, token, hello["nonce"], mine), reply
    return conn


def talk(address, family, payload: bytes, token: str | None = None) -> list[dict]:
    with connect(address, family, token) as conn:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    return [json.loads(line) for line in data.splitlines()]
