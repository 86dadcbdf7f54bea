"""`keyward report` and `keyward usage …` through click, and once as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from usage_bodies import RPD_ID, quota_429, violation
from usage_world import MODEL, POOL, make_world

from keyward.cli.app import cli
from keyward.quota.windows import pacific_date
from keyward.storage import store as q
from keyward.storage import usage_queries as uq
from keyward.usage import accounting
from support.fakes import fake_auth_key

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def world(tmp_path, sqlite_url, monkeypatch):
    w = make_world(tmp_path, sqlite_url, {"alpha-one": None, "beta-two": None},
                   now=datetime.now(timezone.utc))
    for name, value in w.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KEYWARD_CONFIG", str(w.config_path))
    yield w
    w.ctx.close()


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def local_requests(world, project_id: str) -> int:
    with world.ctx.store.read() as s:
        days = uq.day_totals(s, world.project_pk(project_id), MODEL, pacific_date(world.ctx.now()))
    return days.get("local", (0, 0, 0))[0]


def load_of(world, project_id: str):
    with world.ctx.store.read() as s:
        return {l.project_id: l for l in
                accounting.pool_loads(s, q.get_pool(s, POOL), datetime.now(timezone.utc))}[project_id]


def test_report_usage_counts_against_the_pools_current_key(world):
    result = run("report", "--pool", POOL, "--requests", "3", "--input-tokens", "120",
                 "--output-tokens", "40")
    assert result.exit_code == 0, result.output
    assert "recorded 3 request(s), 120 input and 40 output token(s)" in result.output
    assert local_requests(world, "alpha-one") == 3


def test_report_key_stdin_attributes_to_that_keys_project(world):
    result = run("report", "--key-stdin", "--requests", "2", input=world.secrets["beta-two"] + "\n")
    assert result.exit_code == 0, result.output
    assert world.secrets["beta-two"] not in result.output
    assert local_requests(world, "beta-two") == 2


def test_report_key_stdin_when_key_unknown_exits_2_with_the_key_masked(world):
    secret = fake_auth_key()
    result = run("report", "--key-stdin", input=secret)
    assert result.exit_code == 2 and secret not in result.output and secret[-4:] in result.output


def test_report_from_error_with_a_real_429_marks_the_project_exhausted(world, tmp_path, services):
    body = tmp_path / "429.json"
    body.write_text(quota_429(violation(RPD_ID, "250")))
    result = run("report", "--pool", POOL, "--from-error", str(body))
    assert result.exit_code == 0, result.output
    assert "quota" in result.output and "requests per day" in result.output
    assert load_of(world, "alpha-one").exhausted_scope == "day"
    assert services.published == [((POOL,), "exhausted")]


def test_report_from_error_on_stdin(world, services):
    result = run("report", "--key-id", world.keys["beta-two"], "--from-error", "-",
                 input=quota_429(violation("GenerateRequestsPerMinutePerProjectPerModel")))
    assert result.exit_code == 0, result.output
    assert load_of(world, "beta-two").exhausted_scope == "minute"


def test_report_exhausted_synthesises_a_per_minute_signal(world, services):
    result = run("report", "--pool", POOL, "--exhausted", "--retry-after", "26s")
    assert result.exit_code == 0, result.output
    got = load_of(world, "alpha-one")
    assert got.exhausted_scope == "minute"
    left = (got.exhausted_until - datetime.now(timezone.utc)).total_seconds()
    assert 20 < left <= 26


@pytest.mark.parametrize("args, input, words", [
    (["--from-error", "missing.json"], None, ["missing.json", "cannot read"]),
    (["--from-error", "-"], "{not json", ["stdin", "not valid JSON"]),
    (["--exhausted", "--retry-after", "soon"], None, ["--retry-after", "soon"]),
    (["--key-id", "k-x", "--key-stdin"], "x", ["--key-id and --key-stdin"]),
    (["--exhausted", "--requests", "2"], None, ["separate report"]),
])
def test_report_when_input_bad_exits_2_naming_it(world, args, input, words):
    result = run("report", "--pool", POOL, *args, input=input)
    assert result.exit_code == 2, result.output
    for word in words:
        assert word in result.output


def test_report_from_error_when_file_is_not_json_exits_2_naming_the_file(world, tmp_path):
    bad = tmp_path / "body.txt"
    bad.write_text("<html>Too Many Requests</html>")
    result = run("report", "--pool", POOL, "--from-error", str(bad))
    assert result.exit_code == 2 and str(bad) in result.output and "not valid JSON" in result.output


def test_report_when_pool_unknown_exits_2(world):
    result = run("report", "--pool", "nowhere", "--requests", "1")
    assert result.exit_code == 2 and "nowhere" in result.output
    assert local_requests(world, "alpha-one") == 0


def test_usage_prune_reports_what_it_deleted(world):
    result = run("usage", "prune")
    assert result.exit_code == 0 and "pruned 0 minute row(s)" in result.output


def test_report_as_a_real_process_reads_the_key_from_stdin(world):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "keyward", "report", "--key-stdin", "--requests", "5"],
                          input=world.secrets["alpha-one"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "recorded 5 request(s)" in proc.stdout and "via the database" in proc.stdout
    assert local_requests(world, "alpha-one") == 5
