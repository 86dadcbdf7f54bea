"""The ingest endpoint against hostile local clients: no token, an HTTP POST, a squatter on the
port, values out of bounds, oversized batches, idle and slow connections by the thousand."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import types
from datetime import datetime, timezone

import pytest
from ingest_client import connect, read_line, talk
from usage_bodies import RPD_ID, quota_429, violation
from usage_world import MODEL, POOL, make_world

from keyward.quota.windows import pacific_date
from keyward.storage import usage_queries as uq
from keyward.usage import ingest, wire
from keyward.usage.ingest import IngestServer
from keyward.usage.reporter import send_reports
from keyward.usage.reports import UsageReport
from keyward.usage.token import token_location


@pytest.fixture
def world(tmp_path, sqlite_url):
    w = make_world(tmp_path, sqlite_url, {"alpha-one": None, "beta-two": None},
                   now=datetime.now(timezone.utc))
    yield w
    w.ctx.close()


@pytest.fixture
def server(world):
    srv = IngestServer(world.ctx, world.ctx.config.daemon.ingest_socket, tcp="127.0.0.1:0").start()
    yield srv
    srv.stop()


def _local_requests(world, project_id: str = "alpha-one") -> int:
    with world.ctx.store.read() as s:
        days = uq.day_totals(s, world.project_pk(project_id), MODEL, pacific_date(world.clock.now))
    return days.get("local", (0, 0, 0))[0]


def _exhaustions(world) -> int:
    from sqlalchemy import text

    with world.ctx.store.read() as s:
        return s.execute(text("select count(*) from exhaustion")).scalar()


def _daily_429_lines() -> bytes:
    body = json.loads(quota_429(violation(RPD_ID)))
    line = json.dumps({"type": "error", "http_status": 429, "body": body, "pool": POOL})
    return ((line + "\n") * 3 + "\n").encode()


def _wait_closed(conn: socket.socket, seconds: float = 10.0) -> bytes:
    """Return what the server sent before it closed the connection (fails if it never does)."""
    conn.settimeout(seconds)
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data


def test_tcp_without_the_token_is_refused_and_nothing_recorded(world, server):
    with connect(server.tcp_address) as conn:
        hello = json.loads(read_line(conn))
        assert hello["keyward"] == "ingest" and "nonce" in hello
        conn.sendall(_daily_429_lines())
        answer = _wait_closed(conn)
    assert b"authentication failed" in answer
    assert _exhaustions(world) == 0


def test_tcp_with_a_wrong_token_is_refused(world, server):
    with connect(server.tcp_address) as conn:
        hello = json.loads(read_line(conn))
        line, _ = wire.client_auth("0" * 64, hello["nonce"])
        conn.sendall(line + _daily_429_lines())
        assert b"authentication failed" in _wait_closed(conn)
    assert _exhaustions(world) == 0


def test_http_post_is_closed_at_once_without_an_answer(world, server):
    body = json.dumps({"type": "usage", "pool": POOL, "requests": 1000})
    request = (f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
               f"Content-Length: {len(body) + 1}\r\n\r\n{body}\n\n").encode()
    with socket.create_connection(server.tcp_address, timeout=10) as conn:
        conn.sendall(request)
        data = _wait_closed(conn)
    assert b'"ok"' not in data and b"accepted" not in data  # only the server's hello, if anything
    assert _local_requests(world) == 0


def test_token_file_has_the_published_keys_mode_and_is_fresh_per_start(world):
    path, mode, _group = token_location(world.ctx.config)
    first = IngestServer(world.ctx, None, tcp="127.0.0.1:0").start()
    token1 = path.read_text()
    first.stop()
    assert oct(path.stat().st_mode & 0o777) == oct(mode) == oct(0o600)
    second = IngestServer(world.ctx, None, tcp="127.0.0.1:0").start()
    second.stop()
    assert path.read_text() != token1


def test_reporter_authenticates_over_tcp_and_sends_no_key_string(world, server, monkeypatch):
    sent: list[bytes] = []
    real_sendall = socket.socket.sendall

    def spy(self, data, *args):
        sent.append(bytes(data))
        return real_sendall(self, data, *args)

    monkeypatch.setattr(socket.socket, "sendall", spy)
    config = world.ctx.config
    object.__setattr__(config.daemon, "ingest_socket", None)  # TCP only
    object.__setattr__(config.daemon, "ingest_tcp", "%s:%d" % server.tcp_address)
    secret = world.secrets["alpha-one"]
    reply = send_reports([UsageReport(key=secret, requests=3)], config=config)
    assert reply["via"] == "daemon" and _local_requests(world) == 3
    wire_bytes = b"".join(sent)
    assert secret.encode() not in wire_bytes and b"key_sha256" in wire_bytes


class _Squatter:
    """Listens on a port as another user might while the daemon is down; acknowledges anything."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.address = self.sock.getsockname()
        self.received = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                # Pretend to be keyward: a hello, then "ok" to whatever comes.
                conn.sendall(wire.server_hello(wire.new_nonce()))
                try:
                    while chunk := conn.recv(65536):
                        self.received += chunk
                        conn.sendall(b'{"ok": true, "auth": "00", "accepted": 1, "results": []}\n')
                except OSError:
                    pass

    def close(self):
        self.sock.close()


def test_port_squatter_gets_no_key_and_the_report_is_written_directly(world):
    squatter = _Squatter()
    try:
        config = world.ctx.config
        object.__setattr__(config.daemon, "ingest_socket", None)
        object.__setattr__(config.daemon, "ingest_tcp", "%s:%d" % squatter.address)
        # The daemon wrote a token before it went down; the squatter does not know it.
        from keyward.usage.token import write_token

        write_token(config)
        secret = world.secrets["alpha-one"]
        reply = send_reports([UsageReport(key=secret, requests=2)], config=config,
                             context=lambda: world.ctx)
    finally:
        squatter.close()
    assert reply["via"] == "database" and _local_requests(world) == 2
    assert secret.encode() not in squatter.received and b"requests" not in squatter.received


@pytest.mark.parametrize("line, field", [
    ({"type": "usage", "pool": POOL, "input_tokens": 2 ** 64}, "input_tokens"),
    ({"type": "usage", "pool": POOL, "input_tokens": 2 ** 63 - 1}, "input_tokens"),
    ({"type": "usage", "pool": POOL, "requests": 10 ** 30}, "requests"),
    ({"type": "usage", "pool": POOL, "at": "0001-01-01T00:00:00+14:00"}, "at"),
    ({"type": "usage", "pool": POOL, "at": "2999-01-01T00:00:00+00:00"}, "at"),
    ({"type": "usage", "pool": POOL, "model": "m" * 200}, "model"),
    ({"type": "usage", "pool": POOL, "model": "AIza" + "x" * 35}, "model"),
    ({"type": "usage", "pool": "p" * 64}, "pool"),
    ({"type": "usage", "key_sha256": "not-a-digest"}, "key_sha256"),
])
def test_value_out_of_bounds_is_refused_by_name(world, server, line, field):
    [reply] = talk(server.tcp_address, socket.AF_INET, (json.dumps(line) + "\n").encode(),
                   server._token)
    assert reply["ok"] is False and field in reply["error"] and "AIza" not in reply["error"]
    assert _local_requests(world) == 0


def test_deeply_nested_body_is_refused_with_an_answer(world, server):
    depth = 30_000  # fits in one line (64 KiB), far deeper than the JSON parser recurses
    line = b'{"type": "error", "http_status": 429, "body": ' + b"[" * depth + b"]" * depth + b"}\n"
    [reply] = talk(server.tcp_address, socket.AF_INET, line, server._token)
    assert reply["ok"] is False and "nested" in reply["error"]


def test_key_string_as_pool_is_not_echoed(world, server):
    secret = world.secrets["alpha-one"]
    [reply] = talk(str(world.ctx.config.daemon.ingest_socket), socket.AF_UNIX,
                   (json.dumps({"type": "usage", "pool": secret}) + "\n").encode())
    assert reply["ok"] is False and secret not in json.dumps(reply)
    assert secret[4:] not in json.dumps(reply)


def test_oversized_unterminated_batch_is_answered_and_closed(world, server):
    line = (json.dumps({"type": "usage", "pool": POOL, "model": MODEL, "requests": 1}) + "\n")
    chunk = line.encode() * 2000
    with connect(server.tcp_address, token=server._token) as conn:
        answer = b""
        try:
            for _ in range(200):  # up to ~15 MB, far past the 4 MiB cap: the server stops reading
                conn.sendall(chunk)
        except OSError:
            pass  # closed on us mid-send, as it should
        answer = _wait_closed(conn)
    assert b"batch too large" in answer
    assert _local_requests(world) == 0


def test_slow_client_is_dropped_at_the_batch_deadline(world, server, monkeypatch):
    monkeypatch.setattr(ingest, "BATCH_DEADLINE", 0.5)
    with connect(str(world.ctx.config.daemon.ingest_socket), socket.AF_UNIX) as conn:
        conn.sendall(b"{")  # one byte, then nothing: a batch that never ends
        started = time.monotonic()
        assert _wait_closed(conn) == b""
    assert time.monotonic() - started < 10


_IDLE_CLIENTS = textwrap.dedent("""
    import resource, socket, sys
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    conns = []
    for _ in range(int(sys.argv[2])):
        s = socket.socket(socket.AF_UNIX)
        s.connect(sys.argv[1])
        conns.append(s)
    print("connected", flush=True)
    sys.stdin.read()
""")


def test_1100_idle_connections_leave_room_for_real_reports(world):
    srv = IngestServer(world.ctx, world.ctx.config.daemon.ingest_socket, max_connections=64).start()
    path = str(world.ctx.config.daemon.ingest_socket)
    idle = subprocess.Popen([sys.executable, "-c", _IDLE_CLIENTS, path, "1100"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert idle.stdout.readline().strip() == "connected"
        deadline = time.monotonic() + 10
        while srv.open_connections < 64 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert srv.open_connections <= 64
        # Connections above the cap are closed on accept: a report made meanwhile is refused at
        # once and written directly (never left waiting), and the daemon keeps its descriptors.
        started = time.monotonic()
        reply = send_reports([UsageReport(pool=POOL, requests=1)], config=world.ctx.config,
                             context=lambda: world.ctx)
        assert reply["via"] == "database" and time.monotonic() - started < 5
        idle.stdin.close()
        idle.wait(10)
        reply = send_reports([UsageReport(pool=POOL, requests=1)], config=world.ctx.config)
        assert reply["via"] == "daemon"
    finally:
        idle.kill()
        idle.wait()
        idle.stdout.close()
        srv.stop()
    assert _local_requests(world) == 2


def test_idle_connections_above_the_cap_do_not_block_a_report(world):
    srv = IngestServer(world.ctx, world.ctx.config.daemon.ingest_socket, max_connections=8).start()
    path = str(world.ctx.config.daemon.ingest_socket)
    holders = []
    try:
        for _ in range(8):
            holders.append(connect(path, socket.AF_UNIX))
        deadline = time.monotonic() + 10
        while srv.open_connections < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        extra = connect(path, socket.AF_UNIX)
        assert _wait_closed(extra, 5) == b""  # closed on accept: the cap holds
        extra.close()
    finally:
        for conn in holders:
            conn.close()
        srv.stop()


@pytest.fixture
def other_user():
    """A real unprivileged account, created for the test (root only) and removed after it."""
    if os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("setpriv"):
        pytest.skip("needs root, useradd and setpriv to create another local user")
    name = f"kwtest{os.getpid() % 100000}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], capture_output=True)


_ATTACK = textwrap.dedent("""
    import json, socket, sys
    host, port, token_path, line = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    try:
        open(token_path).read()
        print("token readable")
    except PermissionError:
        print("token unreadable")
    s = socket.create_connection((host, port), timeout=10)
    s.recv(4096)
    s.sendall((line + "\\n\\n").encode() * 3)
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    print(data.decode())
""")


def test_another_local_user_cannot_report_over_tcp(world, server, other_user):
    user = other_user
    token_path, _, _ = token_location(world.ctx.config)
    body = json.loads(quota_429(violation(RPD_ID)))
    line = json.dumps({"type": "error", "http_status": 429, "body": body, "pool": POOL})
    result = subprocess.run(
        ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", sys.executable,
         "-I", "-c", _ATTACK, server.tcp_address[0], str(server.tcp_address[1]), str(token_path), line],
        capture_output=True, text=True, timeout=60)
    assert "token unreadable" in result.stdout, result.stderr
    assert "authentication failed" in result.stdout
    assert _exhaustions(world) == 0


class _FailingListener:
    """A listening socket whose accept() fails as it does when the process is out of descriptors."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.family = sock.family
        self.calls = 0

    def fileno(self):
        return self.sock.fileno()

    def accept(self):
        self.calls += 1
        raise OSError(24, "Too many open files")

    def close(self):
        self.sock.close()


def test_accept_failures_back_off_instead_of_spinning(world):
    srv = IngestServer(world.ctx, None)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    failing = _FailingListener(sock)
    srv._listeners.append(failing)
    srv.start()
    client = socket.create_connection(sock.getsockname(), timeout=5)  # keeps the listener readable
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.close()
        srv.stop()
    assert 1 <= failing.calls <= 10  # a spinning loop makes tens of thousands of calls


def test_token_takes_the_published_keys_group_and_mode_and_sits_beside_it(tmp_path):
    import grp

    from keyward.config import load_config
    from keyward.usage.token import read_token, write_token

    group = grp.getgrgid(os.getgid()).gr_name
    config_path = tmp_path / "keyward.toml"
    config_path.write_text(f'database = "sqlite:///{tmp_path}/k.db"\n[pools.default]\n'
                           f'model = "gemini-2.5-flash"\n[[pools.default.sinks]]\ntype = "file"\n'
                           f'path = "{tmp_path}/pub/default.key"\nmode = "0640"\ngroup = "{group}"\n')
    config = load_config(config_path, env={"HOME": str(tmp_path)})
    old = os.umask(0)
    try:
        path = write_token(config)
    finally:
        os.umask(old)
    st = os.stat(path)
    assert path == tmp_path / "pub" / "keyward-ingest.token"
    assert st.st_mode & 0o777 == 0o640 and st.st_gid == os.getgid()
    assert os.stat(path.parent).st_mode & 0o777 == 0o750
    assert len(read_token(config)) == 64


def test_token_follows_the_file_sink_after_a_reload(world, server, tmp_path):
    import dataclasses

    from keyward.config.model import SinkConfig
    from keyward.usage.token import read_token

    old = world.ctx.config
    pool = dataclasses.replace(old.pools[POOL], sinks=(SinkConfig("file", {
        "path": tmp_path / "elsewhere" / "main.key", "format": "raw", "mode": 0o600, "group": None}),))
    new = dataclasses.replace(old, pools={**old.pools, POOL: pool})
    server._ctx_source = types.SimpleNamespace(config=new, store=world.ctx.store)  # a reloaded Context
    server.config_changed()
    assert (tmp_path / "elsewhere" / "keyward-ingest.token").exists()
    assert read_token(new) == server._token
