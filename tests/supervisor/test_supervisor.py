"""The pure parts of keyward exec: parsing --on-change, the child's environment, exit statuses."""

from __future__ import annotations

import signal

import pytest

from keyward.errors import UsageError
from keyward.supervisor import OnChange, child_environment, exit_status, parse_on_change


@pytest.mark.parametrize("text,expected", [
    ("restart", OnChange("restart")), ("none", OnChange("none")),
    ("signal:HUP", OnChange("signal", signal.SIGHUP)), ("signal:sigusr1", OnChange("signal", signal.SIGUSR1)),
])
def test_parse_on_change_when_valid(text, expected):
    assert parse_on_change(text) == expected


@pytest.mark.parametrize("text", ["reload", "signal:", "signal:KILL", "signal:STOP", "signal:NOPE", ""])
def test_parse_on_change_when_invalid_raises_usage_error(text):
    with pytest.raises(UsageError):
        parse_on_change(text)


def test_child_environment_when_other_names_inherited_drops_them():
    base = {"PATH": "/bin", "GOOGLE_API_KEY": "stale", "GEMINI_API_KEY": "stale", "KEYWARD_KEY_ID": "old"}
    env = child_environment(base, "k", ("GEMINI_API_KEY",), "main", None)
    assert env == {"PATH": "/bin", "GEMINI_API_KEY": "k", "KEYWARD_POOL": "main"}
    env = child_environment(base, "k", ("GOOGLE_API_KEY", "MY_KEY"), "main", "key-1")
    assert env == {"PATH": "/bin", "GOOGLE_API_KEY": "k", "MY_KEY": "k", "KEYWARD_POOL": "main",
                   "KEYWARD_KEY_ID": "key-1"}


def test_exit_status_when_signalled_is_128_plus_signal():
    assert (exit_status(0), exit_status(3), exit_status(-15)) == (0, 3, 143)
