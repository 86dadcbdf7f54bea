"""How many usage reports per second keyward records from 8 concurrent processes, losing none.

Each worker process sends its reports one at a time through `keyward.usage.reporter` (the path
`keyward.client.report` takes, each call returning only once its report is committed): to the
ingest socket of a real daemon (`keyward run`), or straight to the SQLite database when no daemon
listens. The workers share the machine's cores with the daemon, so what a report costs the
reporting process counts as much as what it costs the daemon. Totals are checked in the database
at the end. Target: >= 5,000 reports/s sustained through the socket, nothing lost.

Besides the rate, each row says what one report cost in CPU time: in the reporting processes
(`client us`) and in the daemon (`daemon us`). Two reference rows tell where the rest goes: `raw`
sends the same reports to the same kind of daemon as pre-encoded batches on a plain socket (what a
client in a compiled language would pay: the daemon's own ceiling), and `echo` exchanges the same
bytes with a bare Python echo server (one thread, selectors) doing nothing else: the floor of any
Python daemon on this machine.

    python bench/report_throughput.py [--quick] [--workers 8] [--reports 1500]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECTS = ("bench-alpha", "bench-beta", "bench-gamma")
MODEL = "gemini-2.5-flash"


def python_pass_ms() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return (time.perf_counter() - start) * 1000


def make_world(root: Path):
    from keyward.config import load_config
    from keyward.context import Context
    from keyward.storage import store as q

    lines = [f'database = "sqlite:///{root}/state/keyward.db"', "[usage]", "monitoring = false",
             "[pools.main]", f'model = "{MODEL}"', "[[pools.main.sinks]]", 'type = "null"']
    for project in PROJECTS:
        lines += [f"[projects.{project}]", 'pool = "main"']
    config_path = root / "keyward.toml"
    config_path.write_text("\n".join(lines) + "\n")
    env = {"KEYWARD_STATE_DIR": str(root / "state"), "KEYWARD_RUNTIME_DIR": str(root / "run"),
           "HOME": str(root)}
    ctx = Context(load_config(config_path, env=env), env=env)
    keys = []
    with ctx.store.write() as s:
        for project in PROJECTS:
            secret = "AQ." + secrets.token_urlsafe(40)
            q.add_key(s, q.get_project(s, project), key_id=f"k-{project}", secret=secret,
                      kind="auth", state="active", origin="manual")
            keys.append(secret)
        q.get_pool(s, "main").current_key_id = f"k-{PROJECTS[0]}"
    return ctx, config_path, env, keys


def worker(config_path: str, n: int, keys: list[str]) -> None:
    from keyward.usage.reporter import send_reports
    from keyward.usage.reports import UsageReport

    send_reports([UsageReport(key=keys[0], requests=1)], config_path=config_path)  # warm up
    print("ready", flush=True)
    sys.stdin.readline()
    via: dict[str, int] = {}
    cpu = _cpu_self()
    for i in range(n):
        reply = send_reports([UsageReport(key=keys[i % len(keys)], requests=1, input_tokens=10)],
                             config_path=config_path)
        via[reply["via"]] = via.get(reply["via"], 0) + 1
    print("done " + json.dumps({"via": via, "cpu": _cpu_self() - cpu}), flush=True)


def raw_worker(config_path: str, n: int, keys: list[str]) -> None:
    """Report like `worker`, but as pre-encoded batches on a plain socket: no reporter."""
    import socket

    from keyward.config import load_config
    from keyward.usage import wire
    from keyward.usage.reports import UsageReport

    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(str(load_config(config_path).daemon.ingest_socket))
    batches = [wire.encode_batch([UsageReport(key=key, requests=1, input_tokens=10)]) for key in keys]
    for batch in batches[:1]:  # warm up, as the reporter's workers do
        conn.sendall(batch)
        _answer(conn)
    print("ready", flush=True)
    sys.stdin.readline()
    cpu = _cpu_self()
    for i in range(n):
        conn.sendall(batches[i % len(batches)])
        if not _answer(conn).startswith(b'{"ok": true'):
            raise SystemExit("the daemon refused a report")
    print("done " + json.dumps({"via": {"daemon": n}, "cpu": _cpu_self() - cpu}), flush=True)


def _answer(conn) -> bytes:
    reply = conn.recv(65536)
    while reply and not reply.endswith(b"\n"):
        reply += conn.recv(65536)
    return reply


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


ECHO_LINE = b'{"key_sha256":"' + b"0" * 64 + b'","requests":1,"input_tokens":10}\n\n'
ECHO_REPLY = b'{"ok": true, "accepted": 1, "results": []}\n'


def echo_server(path: str) -> None:
    """A bare echo of the ingest protocol: one thread, selectors, an answer per batch."""
    import selectors
    import socket

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(128)
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for item, _ in sel.select():
            if item.fileobj is listener:
                conn, _ = listener.accept()
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ, data=bytearray())
                continue
            conn, buf = item.fileobj, item.data
            chunk = conn.recv(65536)
            if not chunk:
                sel.unregister(conn)
                conn.close()
                continue
            buf += chunk
            batches = buf.count(b"\n\n")
            if batches:
                del buf[:buf.rindex(b"\n\n") + 2]
                conn.send(ECHO_REPLY * batches)


def echo_worker(path: str, n: int) -> None:
    import socket

    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(path)
    print("ready", flush=True)
    sys.stdin.readline()
    cpu = _cpu_self()
    for _ in range(n):
        conn.sendall(ECHO_LINE)
        reply = conn.recv(65536)
        while not reply.endswith(b"\n"):
            reply += conn.recv(65536)
    print("done " + json.dumps({"via": {"echo": n}, "cpu": _cpu_self() - cpu}), flush=True)


def total_requests(ctx) -> int:
    from keyward.quota.windows import pacific_date
    from keyward.storage import store as q
    from keyward.storage import usage_queries as uq

    total = 0
    today = pacific_date(ctx.now())
    with ctx.store.read() as s:
        for project in PROJECTS:
            pk = q.get_project(s, project).id
            total += uq.day_totals(s, pk, MODEL, today).get("local", (0, 0, 0))[0]
    return total


def run(path: str, workers: int, each: int) -> tuple[float, float, float, int]:
    """Run one path; return (seconds, client CPU s, server CPU s, reports lost)."""
    from _world import Daemon

    with tempfile.TemporaryDirectory() as tmp:
        ctx, config_path, env, keys = make_world(Path(tmp))
        daemon = server = None
        server_pid = None
        if path in ("socket", "raw"):
            daemon = Daemon(config_path, {**os.environ, **env}, Path(tmp))
            daemon.wait_ready(120)
            server_pid = daemon.proc.pid
            if not ctx.config.daemon.ingest_socket.exists():
                daemon.stop()
                raise SystemExit("the daemon is ready but its ingest socket is missing")
        echo_path = str(Path(tmp) / "echo.sock")
        if path == "echo":
            server = subprocess.Popen([sys.executable, __file__, "--echo-server", echo_path],
                                      stdout=subprocess.PIPE, text=True)
            assert server.stdout.readline().strip() == "ready"
            server_pid = server.pid
        try:
            child_env = {**os.environ, **env}
            argv = ([sys.executable, __file__, "--echo-worker", echo_path, str(each)] if path == "echo"
                    else [sys.executable, __file__, "--raw-worker" if path == "raw" else "--worker",
                          str(config_path), str(each), json.dumps(keys)])
            procs = [subprocess.Popen(argv, env=child_env, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True) for _ in range(workers)]
            for p in procs:
                assert p.stdout.readline().strip() == "ready"
            server_cpu = _cpu_of(server_pid) if server_pid else 0.0
            start = time.perf_counter()
            for p in procs:
                p.stdin.write("go\n")
                p.stdin.flush()
            via: dict[str, int] = {}
            client_cpu = 0.0
            for p in procs:
                word, _, rest = p.stdout.readline().partition(" ")
                assert word == "done", word
                done = json.loads(rest)
                client_cpu += done["cpu"]
                for name, count in done["via"].items():
                    via[name] = via.get(name, 0) + count
            elapsed = time.perf_counter() - start
            server_cpu = _cpu_of(server_pid) - server_cpu if server_pid else 0.0
            expected_via = {"socket": "daemon", "raw": "daemon", "database": "database", "echo": "echo"}[path]
            if set(via) != {expected_via}:
                raise SystemExit(f"{path}: reports went {via}, all should have gone to the {expected_via}")
            for p in procs:
                p.stdin.close()
                p.wait()
        finally:
            if daemon is not None:
                daemon.stop()
            if server is not None:
                server.kill()
                server.wait()
        expected = workers * (each + 1)
        lost = 0 if path == "echo" else expected - total_requests(ctx)
        ctx.close()
        return elapsed, client_cpu, server_cpu, lost


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few reports, for CI")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--reports", type=int, default=None, help="reports per worker")
    parser.add_argument("--paths", default="socket,database,raw,echo",
                        help="comma-separated rows to run: socket, database, raw, echo")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--raw-worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--echo-server", help=argparse.SUPPRESS)
    parser.add_argument("--echo-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), json.loads(args.worker[2]))
        return 0
    if args.raw_worker:
        raw_worker(args.raw_worker[0], int(args.raw_worker[1]), json.loads(args.raw_worker[2]))
        return 0
    if args.echo_server:
        echo_server(args.echo_server)
        return 0
    if args.echo_worker:
        echo_worker(args.echo_worker[0], int(args.echo_worker[1]))
        return 0
    each = args.reports or (150 if args.quick else 1500)
    from _world import installed_from, machine

    print(f"keyward from {installed_from()}; {machine()}")
    print(f"python3 -c pass: {python_pass_ms():.1f} ms (for scale)")
    print(f"{'path':<10}{'procs':>6}{'reports':>9}{'seconds':>9}{'reports/s':>11}"
          f"{'client us':>11}{'daemon us':>11}{'lost':>6}")
    failed = False
    for path in args.paths.split(","):
        elapsed, client_cpu, server_cpu, lost = run(path, args.workers, each)
        total = args.workers * each
        rate = total / elapsed
        daemon_us = f"{server_cpu / total * 1e6:.0f}" if path != "database" else "-"
        print(f"{path:<10}{args.workers:>6}{total:>9}{elapsed:>9.2f}{rate:>11.0f}"
              f"{client_cpu / total * 1e6:>11.0f}{daemon_us:>11}{lost:>6}", flush=True)
        failed |= lost != 0
    print("client us / daemon us: CPU time (user + system) per report in the reporting processes "
          "together / in the daemon; raw: the same daemon, clients without the reporter (plain "
          "socket, pre-encoded); echo: a bare Python echo server, the floor")
    print("target: socket >= 5000 reports/s, lost = 0")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
