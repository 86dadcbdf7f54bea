"""Sealing a live database: the real daemon and a reader keep working while a plain database is
encrypted in place and then rekeyed twice, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import threading

from click.testing import CliRunner

from keyward.cli.app import cli
from keyward.storage import store as q
from support.daemon_harness import DaemonProcess, wait_for, write_config
from support.fakes import fake_auth_key

PROJECT = ("alpha-proj", "111111111111")


class Reader(threading.Thread):
    """Opens every stored secret in a loop, as another process on the host would, until stopped."""

    def __init__(self, config, env):
        super().__init__(daemon=True)
        from keyward.config import load_config
        from keyward.context import Context

        self.ctx = Context(load_config(config, env=env), env=env)
        self.stop = threading.Event()
        self.reads, self.errors, self.seen = 0, [], set()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with self.ctx.store.read() as s:
                    self.seen.update(k.secret for k in q.list_keys(s))
                self.reads += 1
            except Exception as exc:  # recorded for the assertion, never raised in the thread
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def finish(self) -> None:
        self.stop.set()
        self.join(30)
        self.ctx.close()


def test_encrypt_and_rekey_when_daemon_and_reader_run_lose_nothing(any_db_url, tmp_path, kw_env, emu):
    from keyward.sinks.file import read_published_file

    config = write_config(tmp_path, [PROJECT], managed=False)
    env = {**kw_env, "KEYWARD_DATABASE_URL": any_db_url, "KEYWARD_GOOGLE_EMULATOR_HOST": emu.address}
    runner = CliRunner(env=env)

    def run(*args: str, input: str | None = None) -> str:
        result = runner.invoke(cli, ["--config", str(config), *args], input=input, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    first = fake_auth_key()
    run("key", "add", "--project", PROJECT[0], input=first + "\n")
    published = tmp_path / "run" / "default.key"
    daemon = DaemonProcess(config, env)
    reader = Reader(config, env)
    try:
        wait_for(lambda: published.exists() and read_published_file(published) == first, 60,
                 "the daemon to publish the plain key")
        reader.start()
        wait_for(lambda: reader.reads >= 3, 30, "the reader to read")

        run("db", "master-key", "init")
        assert "(1 from plain text)" in run("db", "encrypt")
        for _ in range(2):
            run("db", "master-key", "init", "--add")
            assert "sealed 1 secret(s)" in run("db", "rekey")
        before = reader.reads
        wait_for(lambda: reader.reads >= before + 3, 30, "the reader to read after the rekeys")

        # A key sealed with the newest master key, which the daemon never saw at start: it must open it.
        key_id = _current_key_id(config, env)
        second = fake_auth_key()
        run("key", "add", "--project", PROJECT[0], "--replaces", key_id, input=second + "\n")
        wait_for(lambda: read_published_file(published) == second, 60,
                 "the daemon to publish the key sealed with the new master key")
        assert daemon.proc.poll() is None, daemon.log
    finally:
        reader.finish()
        daemon.stop()

    assert reader.errors == []
    assert reader.seen == {first, second}
    status = json.loads(run("status", "--json"))
    assert status["secrets"]["plain"] == 0 and status["secrets"]["sealed"] == 2
    assert status["recent_errors"] == []
    assert first not in daemon.log and second not in daemon.log


def _current_key_id(config, env) -> str:
    from keyward.config import load_config
    from keyward.context import Context

    with Context(load_config(config, env=env), env=env) as ctx, ctx.store.read() as s:
        return q.find_pool(s, "default").current_key_id
