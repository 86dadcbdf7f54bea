"""Property tests of the ingest wire format and of `keyward report`'s options: any line or option
ends in a report or a named error (exit 2 for usage), never an internal error or a key echoed."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from usage_world import POOL, make_world

from keyward.errors import UsageError
from keyward.usage import wire
from keyward.usage.reports import ErrorReport, UsageReport, from_json, to_json
from support.fakes import fake_auth_key

KEY = fake_auth_key()
SETTINGS = settings(max_examples=300, deadline=None, database=None)

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False), st.text(max_size=20),
    st.sampled_from([KEY, "0001-01-01T00:00:00+14:00", "2999-01-01T00:00:00Z", 2**64, 2**63 - 1,
                     "m" * 200, "main", "gemini-2.5-flash", "usage", "error", 429, "a" * 64]))
json_values = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)
FIELDS = ["type", "pool", "key", "key_sha256", "key_id", "model", "requests", "input_tokens",
          "output_tokens", "at", "http_status", "body"]
report_objects = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6)


def _check_line(raw: bytes) -> None:
    try:
        report = wire.decode_line(raw, 1)
    except UsageError as exc:
        assert str(exc).startswith("line 1:") and KEY not in str(exc)
        reply = wire.error_reply(exc, 1)
        assert KEY.encode() not in reply
        return
    assert isinstance(report, (UsageReport, ErrorReport))
    assert KEY not in repr(report)
    encoded = json.dumps(to_json(report))
    assert KEY not in encoded  # the string never travels on: only its fingerprint
    again = from_json(json.loads(encoded))
    assert again.key_sha256 == report.key_sha256 and again.pool == report.pool


@SETTINGS
@given(report_objects)
@example({"type": "usage", "pool": POOL, "input_tokens": 2**64})
@example({"type": "usage", "pool": POOL, "at": "0001-01-01T00:00:00+14:00"})
@example({"type": "usage", "pool": KEY})
@example({"type": "usage", "model": KEY})
@example({"type": "error", "http_status": 429, "body": {"foo": 1}})
@example({"type": "error", "http_status": 429, "body": [{"error": {"code": 400}}]})
def test_any_report_object_decodes_or_is_refused_by_name(obj):
    _check_line(json.dumps(obj).encode())


@SETTINGS
@given(st.binary(max_size=300))
@example(b"\xff\xfe\n")
@example(b"[" * 200_000)
@example(b'{"type": "error", "http_status": 429, "body": ' + b"[" * 30_000 + b"]" * 30_000 + b"}")
def test_any_bytes_decode_or_are_refused_by_name(raw):
    _check_line(raw)


@SETTINGS
@given(st.text(max_size=60))
@example("POST / HTTP/1.1")
def test_any_first_line_is_auth_or_refused(line):
    raw = line.encode()
    assert wire.check_client_auth(raw, "t" * 64, "n" * 32) is None


# -- keyward report ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def report_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report-props")
    url = f"sqlite:///{tmp / 'keyward.db'}"
    world = make_world(tmp, url, {"alpha-one": None}, now=datetime.now(timezone.utc))
    env = {**world.env, "KEYWARD_CONFIG": str(world.config_path)}
    yield env, tmp
    world.ctx.close()


option_values = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from([str(10**30), "-1", "0", "x", "", "1e9", KEY, "26s", "167h", "1m30m"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
            max_size=15))
OPTIONS = ["--pool", "--model", "--requests", "--input-tokens", "--output-tokens", "--retry-after",
           "--status", "--key-id"]
FLAGS = ["--exhausted", "--per-day"]


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(OPTIONS), option_values, max_size=3),
       st.lists(st.sampled_from(FLAGS), unique=True, max_size=2),
       st.one_of(st.none(), st.binary(max_size=80), st.sampled_from([
           b"\xff\xfe\x00", b"[" * 100_000, b'{"foo": 1}',
           b'[{"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "API key not valid."}}]'])))
@example({"--requests": str(10**30)}, [], None)
@example({}, [], b"\xff\xfe\x00garbage")
@example({}, [], b"[" * 100_000)
@example({"--pool": KEY}, [], None)
def test_report_options_end_in_success_or_a_named_error(report_env, options, flags, body):
    from keyward.cli.app import cli

    env, tmp = report_env
    args = ["report"]
    for name, value in options.items():
        args += [name, value]
    args += flags
    if body is not None:
        path = tmp / "body.json"
        path.write_bytes(body)
        args += ["--from-error", str(path)]
    result = CliRunner(env=env).invoke(cli, args)
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code in (0, 1, 2), output
    assert "internal error" not in output and KEY not in output, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def test_streamed_invalid_key_body_is_not_read_as_a_429(report_env):
    from keyward.cli.app import cli

    env, tmp = report_env
    path = tmp / "streamed.json"
    path.write_text(json.dumps([{"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                           "message": "API key not valid. Please pass a valid API key."}}]))
    result = CliRunner(env=env).invoke(cli, ["report", "--pool", POOL, "--from-error", str(path)])
    assert result.exit_code == 0, result.output
    assert "invalid_key" in result.output and "quota" not in result.output


def test_json_that_is_not_a_google_error_is_refused(report_env):
    from keyward.cli.app import cli

    env, tmp = report_env
    path = tmp / "other.json"
    path.write_text('{"detail": "rate limited by the proxy"}')
    result = CliRunner(env=env).invoke(cli, ["report", "--pool", POOL, "--from-error", str(path)])
    assert result.exit_code == 2 and "not a Google error" in result.output
