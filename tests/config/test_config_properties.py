"""Property tests of the config loader: any file ends in a Config or a ConfigError (exit 2 with
file, line and key), never another exception, and a key string in it is never echoed."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from keyward.config import load_config
from keyward.errors import ConfigError
from support.fakes import fake_auth_key

KEY = fake_auth_key()
SECTIONS = {
    "rotation": ["min_age", "max_age", "grace", "verify", "retry_backoff", "max_backoff",
                 "operation_timeout", "retry_budget"],
    "usage": ["poll_interval", "monitoring", "minute_retention", "day_retention", "monitoring_lag"],
    "selection": ["margin", "interval"],
    "daemon": ["rotation_check", "jitter", "heartbeat", "ingest_socket", "ingest_tcp", "metrics",
               "lock_file"],
}
SETTINGS = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, int) else ("nan" if value != value else repr(value).replace("inf", "inf"))
    if isinstance(value, str):
        return json.dumps(value)
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63 - 1, 2**63, 10**30, -1, 0]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["99999999999d", "²", "٣s", "1h30m", "7d", "0s", "bogus://x",
                     "sqlite:////tmp/x.db", "127.0.0.1:0", "[::1]:99999", KEY]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)


@st.composite
def documents(draw) -> str:
    lines = []
    if draw(st.booleans()):
        lines.append(f"database = {_toml_value(draw(st.sampled_from(['bogus://x', 'mysql://u@h/d', KEY, 'sqlite:///rel'])))}")
    for section, keys in SECTIONS.items():
        chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=3))
        if chosen:
            lines.append(f"[{section}]")
            lines += [f"{k} = {_toml_value(draw(values))}" for k in chosen]
    if draw(st.booleans()):
        pid = draw(st.sampled_from(["alpha-one12", KEY, "x"]))
        lines += [f'[projects."{pid}"]', 'pool = "default"',
                  f"number = {_toml_value(draw(values))}",
                  f'[projects."{pid}".limits."gemini-2.5-flash"]',
                  f"rpm = {_toml_value(draw(values))}"]
    return "\n".join(lines) + "\n"


def _load(text: str):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "keyward.toml"
        path.write_text(text, encoding="utf-8")
        try:
            return load_config(path, env={"HOME": tmp}), None
        except ConfigError as exc:
            return None, exc


@SETTINGS
@given(documents())
@example('[rotation]\nmax_age = "99999999999d"\n')
@example('[rotation]\nmax_age = "²"\n')
@example('[projects.alpha-one12]\npool = "default"\n[projects.alpha-one12.limits."gemini-2.5-flash"]\nrpm = 9223372036854775807\n')
@example('[projects.alpha-one12]\npool = "default"\nnumber = "1234567890123456789012345678901234567890"\n')
@example('database = "bogus://x"\n')
@example('[usage]\nmonitoring = "' + KEY + '"\n')  # found: a key pasted as a value was echoed
@example(f'[projects."{KEY}"]\npool = "default"\n')
@example("x = " + "[" * 3000 + "]" * 3000 + "\n")
@example("[rotation]\nmax_age = " + "9" * 5000 + "\n")
def test_any_document_loads_or_raises_config_error(text):
    config, error = _load(text)
    if error is not None:
        message = str(error)
        assert error.exit_code == 2 and KEY not in message
        assert error.problems and all("keyward.toml" in p or "environment" in p for p in error.problems)


@SETTINGS
@given(st.binary(max_size=200))
@example(b"\xff\xfe[rotation]")
@example(b"a = 1\x00")
def test_any_bytes_load_or_raise_config_error(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "keyward.toml"
        path.write_bytes(data)
        try:
            load_config(path, env={"HOME": tmp})
        except ConfigError as exc:
            assert exc.exit_code == 2


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(documents())
@example('[rotation]\nmax_age = "²"\n')
def test_config_validate_exits_0_or_2_and_never_echoes_a_key(text):
    from keyward.cli.app import cli

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "keyward.toml"
        path.write_text(text, encoding="utf-8")
        env = {"HOME": tmp, "KEYWARD_STATE_DIR": tmp, "KEYWARD_RUNTIME_DIR": tmp}
        result = CliRunner(env=env).invoke(cli, ["--config", str(path), "config", "validate"])
    assert result.exit_code in (0, 2), result.output
    assert "internal error" not in result.output and KEY not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
