"""The sd_notify client against real AF_UNIX datagram sockets, as systemd would hold them."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyward.notify import Notifier


@pytest.fixture
def short_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory whose socket paths fit in sun_path (108 bytes); tmp_path can be too long."""
    if len(str(tmp_path)) < 80:
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="kwn"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _listener(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5.0)  # the deadline for a datagram that should already be queued
    return sock


def _fields(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode("utf-8")
    return dict(line.split("=", 1) for line in data.splitlines())


@pytest.fixture
def path_socket(short_dir: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(short_dir / "notify.sock")
    sock = _listener(path)
    with sock:
        yield sock, path


def test_ready_when_socket_set_sends_ready_and_status(path_socket):
    sock, path = path_socket
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})

    assert notifier.enabled
    assert notifier.ready(status="3 pools, 7 projects") is True

    assert _fields(sock) == {"READY": "1", "STATUS": "3 pools, 7 projects"}


def test_status_watchdog_stopping_when_sent_each_arrive_as_own_datagram(path_socket):
    sock, path = path_socket
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})

    notifier.status("rotating project alpha")
    notifier.watchdog()
    notifier.stopping()

    assert _fields(sock) == {"STATUS": "rotating project alpha"}
    assert _fields(sock) == {"WATCHDOG": "1"}
    assert _fields(sock) == {"STOPPING": "1"}


def test_reloading_when_sent_carries_current_monotonic_usec(path_socket):
    sock, path = path_socket
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})

    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    fields = _fields(sock)
    assert fields["RELOADING"] == "1"
    assert before <= int(fields["MONOTONIC_USEC"]) <= after


def test_ready_when_socket_is_abstract_reaches_abstract_name():
    name = "keyward-test-" + secrets.token_hex(8)
    with _listener("\0" + name) as sock:
        notifier = Notifier.from_env({"NOTIFY_SOCKET": "@" + name})

        assert notifier.ready() is True

        assert _fields(sock) == {"READY": "1"}


def test_notifier_when_socket_unset_is_disabled_and_sends_nothing():
    notifier = Notifier.from_env({})

    assert not notifier.enabled
    assert notifier.ready("x") is False
    assert notifier.watchdog() is False
    assert notifier.watchdog_interval() is None


def test_send_when_socket_is_dead_returns_false_without_raising(short_dir: Path):
    path = short_dir / "gone.sock"
    _listener(str(path)).close()  # the file stays, nobody listens: ECONNREFUSED
    missing = short_dir / "never.sock"  # ENOENT

    for target in (path, missing):
        notifier = Notifier.from_env({"NOTIFY_SOCKET": str(target)})
        assert notifier.ready("up") is False
        assert notifier.status("still up") is False
        assert notifier.reloading() is False
        assert notifier.stopping() is False
        assert notifier.watchdog() is False


def test_watchdog_interval_when_usec_set_is_half_in_seconds():
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "60000000"}

    assert Notifier.from_env(env).watchdog_interval() == 30.0
    assert Notifier.from_env({**env, "WATCHDOG_PID": str(os.getpid())}).watchdog_interval() == 30.0


def test_watchdog_interval_when_pid_is_another_process_is_none():
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid() + 1)}

    assert Notifier.from_env(env).watchdog_interval() is None


@pytest.mark.parametrize("usec", ["", "0", "-5", "soon"])
def test_watchdog_interval_when_usec_absent_or_malformed_is_none(usec):
    assert Notifier.from_env({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": usec}).watchdog_interval() is None


def test_send_when_reader_stopped_reading_returns_false_instead_of_blocking(path_socket):
    import threading

    _sock, path = path_socket  # bound, never read: its queue fills up
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})
    outcomes: list[bool] = []

    def flood() -> None:
        for _ in range(100_000):
            outcomes.append(notifier.status("x" * 512))
            if not outcomes[-1]:
                return

    worker = threading.Thread(target=flood, daemon=True)
    worker.start()
    worker.join(timeout=30)

    assert not worker.is_alive(), "a send blocked on a full notify socket"
    assert outcomes[0] is True and outcomes[-1] is False
