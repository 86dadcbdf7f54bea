"""Logging set-up: journald prefixes, the plain line format, context fields and key redaction."""

from __future__ import annotations

import io
import logging
import re
import secrets
import string

import pytest

from keyward.errors import UsageError
from keyward.keystrings import mask
from keyward.log import setup_logging

_URLSAFE = string.ascii_letters + string.digits + "-_"


def fake_standard_key() -> str:
    return "AIza" + "".join(secrets.choice(_URLSAFE) for _ in range(35))


def fake_auth_key() -> str:
    return "AQ." + secrets.token_urlsafe(32)


@pytest.fixture(autouse=True)
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quiet = {n: logging.getLogger(n).level for n in ("apscheduler", "googleapiclient.discovery_cache")}
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name, lvl in quiet.items():
        logging.getLogger(name).setLevel(lvl)


def _setup(level="debug", journald=False) -> io.StringIO:
    stream = io.StringIO()
    setup_logging(level, stream=stream, journald=journald)
    return stream


def test_journald_when_enabled_prefixes_priority_and_omits_timestamp():
    stream = _setup(journald=True)
    logger = logging.getLogger("keyward.test.journal")

    logger.error("e")
    logger.warning("w")
    logger.info("i")
    logger.debug("d")

    assert stream.getvalue().splitlines() == ["<3>e", "<4>w", "<6>i", "<7>d"]


def test_journald_when_auto_follows_journal_stream(monkeypatch):
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    stream = io.StringIO()
    setup_logging("info", stream=stream)

    logging.getLogger("keyward.test").info("hello")

    assert stream.getvalue() == "<6>hello\n"


def test_plain_when_not_journald_has_utc_stamp_level_and_logger(monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    stream = io.StringIO()
    setup_logging("info", stream=stream)

    logging.getLogger("keyward.rotation").warning("grace ends in %d minutes", 10)

    line = stream.getvalue()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ WARNING keyward\.rotation: grace ends in 10 minutes\n", line
    ), line


def test_level_when_info_drops_debug_lines():
    stream = _setup("info")

    logging.getLogger("keyward.test").debug("hidden")
    logging.getLogger("keyward.test").info("shown")

    assert "hidden" not in stream.getvalue()
    assert "shown" in stream.getvalue()


def test_setup_when_called_twice_does_not_duplicate_lines():
    _setup()
    stream = _setup()

    logging.getLogger("keyward.test").info("once")

    assert stream.getvalue().count("once") == 1


def test_setup_when_level_unknown_raises_usage_error():
    with pytest.raises(UsageError, match="unknown log level 'loud'"):
        setup_logging("loud", stream=io.StringIO())


def test_extra_when_context_given_renders_suffix_in_order():
    stream = _setup(journald=True)

    logging.getLogger("keyward.test").info(
        "rotated", extra={"key_id": "kw-20261128", "pool": "default", "project": "alpha-1"}
    )

    assert stream.getvalue() == "<6>rotated project=alpha-1 pool=default key_id=kw-20261128\n"


def test_extra_when_value_has_space_is_quoted_and_missing_fields_omitted():
    stream = _setup(journald=True)

    logging.getLogger("keyward.test").info("x", extra={"pool": "my pool"})

    assert stream.getvalue() == '<6>x pool="my pool"\n'


@pytest.mark.parametrize("make_key", [fake_standard_key, fake_auth_key])
def test_redaction_when_key_in_message_masks_it(make_key):
    key = make_key()
    stream = _setup()

    logging.getLogger("keyward.test").info("published " + key + " to sink")

    out = stream.getvalue()
    assert key not in out
    assert f"published {mask(key)} to sink" in out


@pytest.mark.parametrize("make_key", [fake_standard_key, fake_auth_key])
def test_redaction_when_key_in_args_masks_it(make_key):
    key = make_key()
    stream = _setup()

    class Holder:
        def __str__(self) -> str:
            return f"Holder({key})"

    logging.getLogger("keyward.test").warning("got %s and %r", key, {"k": key})
    logging.getLogger("keyward.test").warning("object %s", Holder())

    out = stream.getvalue()
    assert key not in out
    assert f"got {mask(key)} and {{'k': '{mask(key)}'}}" in out
    assert f"object Holder({mask(key)})" in out


def test_redaction_when_key_in_exception_masks_traceback():
    key = fake_auth_key()
    stream = _setup(journald=True)

    try:
        raise RuntimeError(f"backend said no to {key}")
    except RuntimeError:
        logging.getLogger("keyward.test").exception("publish failed")

    out = stream.getvalue()
    assert key not in out
    assert f"RuntimeError: backend said no to {mask(key)}" in out
    # Every traceback line keeps the event's priority, so journalctl -p err shows it whole.
    assert all(line.startswith("<3>") for line in out.splitlines())


def test_redaction_when_key_in_extra_masks_it():
    key = fake_standard_key()
    stream = _setup()

    logging.getLogger("keyward.test").info("x", extra={"key_id": key})

    assert key not in stream.getvalue()
    assert f"key_id={mask(key)}" in stream.getvalue()


def test_redaction_when_format_args_mismatch_still_masks_and_does_not_raise():
    key = fake_standard_key()
    stream = io.StringIO()
    handler = setup_logging("debug", stream=stream, journald=False)
    # Handed to our handler alone: pytest's own capture handler would raise on this record first.
    record = logging.getLogger("keyward.test").makeRecord(
        "keyward.test", logging.INFO, __file__, 1, "two %s %s", (key,), None
    )

    handler.handle(record)

    assert key not in stream.getvalue()
    assert "unformattable" in stream.getvalue()


def test_quiet_loggers_when_info_hold_back_third_party_noise():
    stream = _setup("info")

    logging.getLogger("apscheduler.scheduler").info("Added job")
    logging.getLogger("googleapiclient.discovery_cache").warning("file_cache unavailable")

    assert stream.getvalue() == ""


def test_quiet_loggers_when_debug_let_scheduler_through():
    stream = _setup("debug")

    logging.getLogger("apscheduler.scheduler").info("Added job")
    logging.getLogger("googleapiclient.discovery_cache").warning("file_cache unavailable")

    assert "Added job" in stream.getvalue()
    assert "file_cache" not in stream.getvalue()
