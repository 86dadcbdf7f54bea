"""The daemon's status socket when a client leaves before reading the answer (`status | head`)."""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest

from keyward import status_socket
from keyward.status_socket import StatusServer, fetch, socket_path

BIG = json.dumps({"schema_version": 1, "padding": "x" * (8 << 20)})  # far more than a socket buffer


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
def test_status_server_when_client_leaves_early_logs_no_traceback_and_serves_the_next(
        tmp_path, monkeypatch, capfd, caplog, reset):
    monkeypatch.setattr(status_socket, "status_text", lambda ctx: BIG)
    caplog.set_level(logging.DEBUG, logger="keyward.status_socket")
    server = StatusServer(lambda: None, socket_path(tmp_path)).start()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(socket_path(tmp_path))
            client.recv(16)
            if reset:  # close with a reset instead of a FIN
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        deadline = time.monotonic() + 10
        while "left before reading" not in caplog.text:
            assert time.monotonic() < deadline, "the server never noticed the client leaving"
            time.sleep(0.05)

        assert len(fetch(tmp_path, timeout=10)) == len(BIG)
    finally:
        server.stop()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception occurred" not in err
