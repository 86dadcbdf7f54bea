"""`keyward report` and `keyward usage clear-exhaustion` against wrong reports: a forged week-long
429 is capped and can be cleared; an unregistered-caller 403 takes no key out; argv never echoes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from test_usage_cli import load_of, run, world  # noqa: F401 (fixture)
from usage_world import POOL

from keyward.storage import store as q


def test_forged_week_long_429_is_capped_at_an_hour_and_cleared_by_command(world, tmp_path, services):
    result = run("report", "--pool", POOL, "--exhausted", "--retry-after", "167h")
    assert result.exit_code == 0, result.output
    load = load_of(world, "alpha-one")
    assert load.exhausted_until <= datetime.now(timezone.utc) + timedelta(hours=1, seconds=5)
    result = run("usage", "clear-exhaustion", "--pool", POOL)
    assert result.exit_code == 0 and "1 exhaustion(s) cleared" in result.output, result.output
    assert load_of(world, "alpha-one").exhausted_until is None
    with world.ctx.store.read() as s:
        assert any(e.kind == "quota.cleared" for e in q.recent_events(s, 10))


def test_clear_exhaustion_needs_a_target_and_names_unknown_ones(world):
    assert run("usage", "clear-exhaustion").exit_code == 2
    result = run("usage", "clear-exhaustion", "--project", "no-such-project")
    assert result.exit_code == 2 and "no-such-project" in result.output


def test_unregistered_caller_403_takes_no_key_out_and_is_journaled(world, tmp_path, services):
    body = tmp_path / "403.json"
    body.write_text(json.dumps({"error": {"code": 403, "status": "PERMISSION_DENIED", "message":
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API."}}))
    result = run("report", "--pool", POOL, "--from-error", str(body))
    assert result.exit_code == 0 and "no_key" in result.output, result.output
    with world.ctx.store.read() as s:
        key = q.get_key(s, world.keys["alpha-one"])
        assert key.state == "active"
        assert any(e.kind == "report.no_key" for e in q.recent_events(s, 10))


@pytest.mark.parametrize("args", [["report", "{key}"], ["{key}"], ["report", "--pool", "{key}"],
                                  ["report", "--requests", "{key}"]])
def test_a_key_in_argv_is_never_echoed(world, args):
    from support.fakes import fake_auth_key

    secret = fake_auth_key()
    result = run(*[a.format(key=secret) for a in args])
    assert result.exit_code == 2 and secret not in result.output and "Traceback" not in result.output


def test_requests_beyond_the_bound_is_a_usage_error(world):
    result = run("report", "--pool", POOL, "--requests", str(10**30))
    assert result.exit_code == 2 and "requests" in result.output.lower()


@pytest.mark.parametrize("body", [b"\xff\xfe\x00\x01", b"[" * 100_000, b"\x00" * 50])
def test_from_error_with_binary_or_deep_bodies_is_a_usage_error(world, tmp_path, body):
    path = tmp_path / "body"
    path.write_bytes(body)
    result = run("report", "--pool", POOL, "--from-error", str(path))
    assert result.exit_code == 2 and "--from-error" in result.output, result.output
