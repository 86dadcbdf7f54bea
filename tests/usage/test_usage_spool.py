"""No report is lost when nobody answers: the per-user spool, delivered on the next contact."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from keyward.errors import StorageError
from keyward.usage.reports import UsageReport
from keyward.usage.spool import Spool, SpoolError

TESTS = Path(__file__).parent.parent


def test_spool_when_delivery_fails_midway_keeps_the_rest_for_later(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.append([UsageReport("p", requests=1, input_tokens=i) for i in range(1, 2501)])
    assert oct(os.stat(spool.path).st_mode & 0o777) == "0o600"
    assert oct(os.stat(spool.directory).st_mode & 0o777) == "0o700"
    seen: list[int] = []

    def flaky(batch):
        if seen and len(seen) >= 1000:
            raise StorageError("database is down")
        seen.extend(r.input_tokens for r in batch)

    with pytest.raises(StorageError):
        spool.deliver(flaky)
    assert seen == list(range(1, 1001))
    rest: list[int] = []
    assert spool.deliver(lambda batch: rest.extend(r.input_tokens for r in batch)) == 1500
    assert rest == list(range(1001, 2501)) and not spool.pending()


def test_spool_when_report_has_no_time_stamps_it_when_spooled(tmp_path):
    spool = Spool(tmp_path / "spool")
    at = (datetime.now(timezone.utc) - timedelta(hours=3)).replace(microsecond=0)
    spool.append([UsageReport("p", input_tokens=3)], now=at)
    got = []
    spool.deliver(got.extend)
    assert got[0].at == at


def test_spool_when_directory_owned_by_someone_else_refuses(tmp_path):
    if os.getuid() != 0:
        pytest.skip("needs root to give a directory away")
    target = tmp_path / "spool"
    target.mkdir(mode=0o700)
    os.chown(target, 65534, 65534)
    with pytest.raises(SpoolError, match="not a directory owned by this user"):
        Spool(target).append([UsageReport("p")])


REPORTER = """
import json, sys
from keyward import client
from keyward.usage import reporter
reporter.send_reports  # imported before the call, like a program would
from keyward.usage.reports import UsageReport
reply = reporter.send_reports([UsageReport("main", model="gemini-2.5-flash", input_tokens=int(sys.argv[1]),
                                           output_tokens=5)])
print(json.dumps({"via": reply["via"]}))
"""


@pytest.fixture
def shared_dir():
    """A directory outside root's private pytest tree, so an unprivileged user can reach it."""
    path = Path(tempfile.mkdtemp(prefix="keyward-spool-test-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.getuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to run the reporter as another user")
def test_report_when_daemon_stopped_and_database_unwritable_spools_then_delivers_once(shared_dir):
    sys.path.insert(0, str(TESTS / "publishing"))
    from publishing_helpers import make_world

    from keyward.config import load_config
    from keyward.context import Context
    from keyward.publishing.service import publish_pools
    from keyward.status import build_status

    world = make_world(shared_dir)
    world.add_key("alpha-1")
    publish_pools(world.ctx, trigger="timer")
    world.ctx.close()
    os.chmod(shared_dir / "keyward.toml", 0o644)
    spool_home = shared_dir / "nobody-state"
    spool_home.mkdir()
    os.chown(spool_home, 65534, 65534)
    env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent", "XDG_STATE_HOME": str(spool_home),
           "KEYWARD_CONFIG": str(shared_dir / "keyward.toml"), "KEYWARD_STATE_DIR": str(shared_dir / "state"),
           "KEYWARD_RUNTIME_DIR": str(shared_dir / "run")}

    def report_as_nobody(tokens: int, expected: str) -> str:
        out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                              "-c", REPORTER, str(tokens)], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        via = json.loads(out.stdout.splitlines()[-1])["via"]
        assert via == expected, out.stderr
        return via

    # The daemon is stopped (no ingest socket) and the database is root's, 0600 in a 0700 directory.
    assert report_as_nobody(100, "spool") == "spool"
    spool_file = spool_home / "keyward" / "spool" / "reports.jsonl"
    lines = spool_file.read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["input_tokens"] == 100 and "at" in json.loads(lines[0])

    # The database becomes writable for the program (as when its daemon comes back): the next
    # report goes through and takes the spooled one with it, each counted once.
    for root, dirs, files in os.walk(shared_dir / "state"):
        for name in [root, *(os.path.join(root, f) for f in files)]:
            os.chown(name, 65534, 65534)
    assert report_as_nobody(7, "database") == "database"
    assert spool_file.read_text() == ""
    env_root = {"KEYWARD_STATE_DIR": str(shared_dir / "state"), "KEYWARD_RUNTIME_DIR": str(shared_dir / "run"),
                "HOME": str(shared_dir)}
    with Context(load_config(shared_dir / "keyward.toml", env=env_root), env=env_root) as ctx:
        [project] = [p for p in build_status(ctx)["projects"] if p["project_id"] == "alpha-1"]
    assert project["usage"]["rpd"]["used"] == 2
    assert report_as_nobody(1, "database") == "database"  # nothing spooled is delivered twice
    with Context(load_config(shared_dir / "keyward.toml", env=env_root), env=env_root) as ctx:
        [project] = [p for p in build_status(ctx)["projects"] if p["project_id"] == "alpha-1"]
    assert project["usage"]["rpd"]["used"] == 3


def test_spool_when_one_report_refused_drops_only_it(tmp_path, caplog):
    from keyward.errors import NotFound

    spool = Spool(tmp_path / "spool")
    spool.append([UsageReport("p", input_tokens=1), UsageReport("gone", input_tokens=2), UsageReport("p", input_tokens=3)])
    got: list[int] = []

    def send(batch):
        if any(r.pool == "gone" for r in batch):
            raise NotFound("no pool named 'gone'")
        got.extend(r.input_tokens for r in batch)

    assert spool.deliver(send) == 3
    assert got == [1, 3] and not spool.pending()
    assert "refused and dropped" in caplog.text and "gone" in caplog.text


def test_spool_when_report_older_than_reports_may_be_drops_it_on_delivery(tmp_path, caplog):
    spool = Spool(tmp_path / "spool")
    spool.append([UsageReport("p", input_tokens=1)], now=datetime.now(timezone.utc) - timedelta(days=8))
    spool.append([UsageReport("p", input_tokens=2)])
    got = []
    spool.deliver(got.extend)
    assert [r.input_tokens for r in got] == [2] and "last 7 days" in caplog.text and not spool.pending()
