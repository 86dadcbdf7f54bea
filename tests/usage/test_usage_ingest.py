"""The ingest socket and the reporter: answers after COMMIT, bad lines named, fallback to the
database when no daemon listens."""

from __future__ import annotations

import json
import socket
import stat
import time
from datetime import datetime, timezone

import pytest
from ingest_client import connect, talk
from usage_bodies import RPM_ID, quota_429, violation
from usage_world import MODEL, POOL, make_world

from keyward.errors import NotFound, UsageError
from keyward.quota.windows import pacific_date
from keyward.storage import store as q
from keyward.storage import usage_queries as uq
from keyward.usage.attribution import KnownKeys
from keyward.usage.ingest import IngestServer, parse_tcp
from keyward.usage.reporter import send_reports
from keyward.usage.reports import ErrorReport, UsageReport, key_fingerprint


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


def _local_requests(world, project_id: str) -> int:
    with world.ctx.store.read() as s:
        days = uq.day_totals(s, world.project_pk(project_id), MODEL, pacific_date(world.clock.now))
    return days.get("local", (0, 0, 0))[0]


def _talk(address, family, payload: bytes, server=None) -> list[dict]:
    return talk(address, family, payload, server._token if server is not None else None)


def test_socket_is_group_accessible_only(world, server):
    mode = stat.S_IMODE(world.ctx.config.daemon.ingest_socket.stat().st_mode)
    assert mode == 0o660


def test_batches_on_one_connection_are_each_answered_after_commit(world, server):
    lines = [{"type": "usage", "key": world.secrets["beta-two"], "requests": 2, "input_tokens": 9},
             {"type": "usage", "pool": POOL, "requests": 3}]
    payload = "".join(json.dumps(x) + "\n" for x in lines) + "\n" + json.dumps(lines[1]) + "\n"
    replies = _talk(str(world.ctx.config.daemon.ingest_socket), socket.AF_UNIX, payload.encode())
    assert [r["accepted"] for r in replies] == [2, 1] and all(r["ok"] for r in replies)
    assert _local_requests(world, "beta-two") == 2 and _local_requests(world, "alpha-one") == 6


def test_bad_line_is_named_and_nothing_of_its_batch_is_recorded(world, server):
    payload = (json.dumps({"type": "usage", "pool": POOL, "requests": 1}) + "\n"
               + '{"type": "usage", "requests": -1}\n' + "not json\n").encode()
    [reply] = _talk(server.tcp_address, socket.AF_INET, payload, server)
    assert reply["ok"] is False and reply["line"] == 2 and reply["error"].startswith("line 2:")
    assert "requests" in reply["error"]
    assert _local_requests(world, "alpha-one") == 0


def test_unknown_pool_in_a_batch_is_named_and_nothing_of_it_is_recorded(world, server):
    payload = (json.dumps({"type": "usage", "pool": POOL}) + "\n"
               + json.dumps({"type": "usage", "pool": "nowhere"}) + "\n").encode()
    [reply] = _talk(server.tcp_address, socket.AF_INET, payload, server)
    assert reply["kind"] == "not_found" and reply["line"] == 2 and "nowhere" in reply["error"]
    assert _local_requests(world, "alpha-one") == 0


def test_error_report_through_socket_is_classified_in_the_answer(world, server, services):
    body = json.loads(quota_429(violation(RPM_ID)))
    payload = (json.dumps({"type": "error", "http_status": 429, "body": body, "pool": POOL})
               + "\n").encode()
    [reply] = _talk(server.tcp_address, socket.AF_INET, payload, server)
    assert reply["ok"] and reply["results"][0]["kind"] == "quota"


def test_reporter_uses_the_daemon_when_it_answers(world, server):
    reply = send_reports([UsageReport(pool=POOL, requests=4)], config=world.ctx.config)
    assert reply["via"] == "daemon" and _local_requests(world, "alpha-one") == 4


def test_reporter_raises_the_daemons_error_for_an_unknown_key(world, server):
    with pytest.raises(NotFound, match="no key 'k-missing'"):
        send_reports([UsageReport(key_id="k-missing")], config=world.ctx.config)


def test_reporter_writes_the_database_when_no_daemon_listens(world):
    assert not world.ctx.config.daemon.ingest_socket.exists()
    reply = send_reports([UsageReport(pool=POOL, requests=5)], config=world.ctx.config,
                         context=lambda: world.ctx)
    assert reply["via"] == "database" and _local_requests(world, "alpha-one") == 5


def test_reporter_falls_back_when_the_socket_file_is_stale(world):
    path = world.ctx.config.daemon.ingest_socket
    path.parent.mkdir(parents=True, exist_ok=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: connect() is refused
    reply = send_reports([UsageReport(pool=POOL)], config=world.ctx.config, context=lambda: world.ctx)
    assert reply["via"] == "database" and _local_requests(world, "alpha-one") == 1


def test_reporter_validates_before_sending(world):
    with pytest.raises(UsageError, match="requests"):
        send_reports([UsageReport(pool=POOL, requests=-2)], config=world.ctx.config)
    with pytest.raises(UsageError, match="http_status"):
        send_reports([ErrorReport(1000, {}, pool=POOL)], config=world.ctx.config)


@pytest.mark.parametrize("address", ["0.0.0.0:8710", "192.0.2.1:80", "127.0.0.1", "localhost:x"])
def test_tcp_endpoint_must_be_loopback(address):
    with pytest.raises(UsageError, match="loopback"):
        parse_tcp(address)


def test_server_stop_removes_the_socket(world):
    srv = IngestServer(world.ctx, world.ctx.config.daemon.ingest_socket).start()
    srv.stop()
    assert not world.ctx.config.daemon.ingest_socket.exists()


def _unix(world, lines: list[dict]) -> dict:
    payload = "".join(json.dumps(x) + "\n" for x in lines).encode()
    [reply] = _talk(str(world.ctx.config.daemon.ingest_socket), socket.AF_UNIX, payload)
    return reply


def test_report_naming_only_its_pool_when_the_current_key_changes_counts_against_the_new_one(world, server):
    assert _unix(world, [{"type": "usage", "pool": POOL, "requests": 1}])["ok"]
    with world.ctx.store.write() as s:
        q.get_pool(s, POOL).current_key_id = world.keys["beta-two"]
    assert _unix(world, [{"type": "usage", "pool": POOL, "requests": 2}])["ok"]
    assert _local_requests(world, "alpha-one") == 1 and _local_requests(world, "beta-two") == 2


def test_report_of_a_key_removed_since_its_last_report_is_refused_and_others_still_count(world, server):
    beta = {"type": "usage", "key_sha256": key_fingerprint(world.secrets["beta-two"]), "requests": 1}
    assert _unix(world, [beta])["ok"]  # its lookup is kept now
    with world.ctx.store.write() as s:
        q.remove_project(s, q.get_project(s, "beta-two"))
    reply = _unix(world, [beta])
    assert reply["ok"] is False and reply["kind"] == "not_found" and reply["line"] == 1
    alpha = {"type": "usage", "key_sha256": key_fingerprint(world.secrets["alpha-one"]), "requests": 3}
    assert _unix(world, [alpha])["ok"] and _local_requests(world, "alpha-one") == 3


def test_known_keys_when_their_time_passes_are_looked_up_again():
    now = [100.0]
    known = KnownKeys(ttl=2.0, clock=lambda: now[0])
    known.put(("fp", None, None, None), "target")
    now[0] += 1.9
    assert known.get(("fp", None, None, None)) == "target"
    now[0] += 0.2
    assert known.get(("fp", None, None, None)) is None


def test_answers_of_pipelined_batches_keep_their_order_good_bad_good(world, server):
    good = json.dumps({"type": "usage", "pool": POOL, "requests": 1}) + "\n"
    payload = (good + "\n" + '{"type": "usage", "requests": -1}\n\n' + good + good + "\n").encode()
    replies = _talk(str(world.ctx.config.daemon.ingest_socket), socket.AF_UNIX, payload)
    assert [(r["ok"], r.get("accepted"), r.get("line")) for r in replies] == [
        (True, 1, None), (False, None, 1), (True, 2, None)]
    assert _local_requests(world, "alpha-one") == 3


def test_client_that_never_reads_its_answers_is_disconnected_and_others_still_answered(world, server):
    line = json.dumps({"type": "error", "http_status": 500, "body": None, "pool": POOL}) + "\n"
    batch = (line * 200 + "\n").encode()  # each answer lists 200 results: the buffer fills fast
    conn = connect(str(world.ctx.config.daemon.ingest_socket), socket.AF_UNIX)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            conn.sendall(batch)
        pytest.fail("the daemon kept a client that reads none of its answers")
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        conn.close()
    assert _unix(world, [{"type": "usage", "pool": POOL, "requests": 1}])["ok"]


def test_known_keys_when_the_database_changes_are_dropped():
    known = KnownKeys()
    known.bind("first database")
    known.put(("fp", None, None, None), "target")
    known.bind("first database")
    assert known.get(("fp", None, None, None)) == "target"
    known.bind("second database")
    assert known.get(("fp", None, None, None)) is None


def test_reporter_writes_directly_when_the_listener_never_answers(world, monkeypatch):
    from keyward.usage import reporter

    monkeypatch.setattr(reporter, "REPLY_TIMEOUT", 1)
    path = world.ctx.config.daemon.ingest_socket
    path.parent.mkdir(parents=True, exist_ok=True)
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mute.bind(str(path))
    mute.listen(4)  # connections complete in the backlog; nothing is ever read or answered
    try:
        reply = send_reports([UsageReport(pool=POOL, requests=3)], config=world.ctx.config,
                             context=lambda: world.ctx)
    finally:
        mute.close()
        reporter.close()
    assert reply["via"] == "database" and _local_requests(world, "alpha-one") == 3


def test_forked_child_reports_on_its_own_connection(world, server):
    import os

    from keyward.usage import reporter

    send_reports([UsageReport(pool=POOL, requests=1)], config=world.ctx.config)
    parent_conn = next(iter(reporter._state["conns"].values()))
    pid = os.fork()
    if pid == 0:  # the child: a shared socket would mix its answers with the parent's
        code = 1
        try:
            reply = send_reports([UsageReport(pool=POOL, requests=2)], config=world.ctx.config)
            mine = next(iter(reporter._state["conns"].values()))
            code = 0 if reply["via"] == "daemon" and mine is not parent_conn else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    reply = send_reports([UsageReport(pool=POOL, requests=4)], config=world.ctx.config)
    assert reply["via"] == "daemon" and reporter._state["conns"] and _local_requests(world, "alpha-one") == 7
    assert next(iter(reporter._state["conns"].values())) is parent_conn
    reporter.close()


def test_a_connection_that_breaks_the_server_ends_alone(world, server, monkeypatch):
    from keyward.usage import wire as wire_module

    real = wire_module.decode_line

    def decode(raw, number):
        if b"boom" in raw:
            raise RuntimeError("unexpected")
        return real(raw, number)

    monkeypatch.setattr(wire_module, "decode_line", decode)
    path = str(world.ctx.config.daemon.ingest_socket)
    with connect(path, socket.AF_UNIX) as broken:
        broken.sendall(b'{"type": "usage", "pool": "boom"}\n\n')
        broken.settimeout(10)
        assert broken.recv(4096) == b""  # ended without an answer: its reporter writes it itself
    reply = send_reports([UsageReport(pool=POOL, requests=2)], config=world.ctx.config)
    assert reply["via"] == "daemon" and _local_requests(world, "alpha-one") == 2
