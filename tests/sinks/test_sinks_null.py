"""NullSink: the contract, plus what a dry run and other tests rely on."""

from __future__ import annotations

import contextlib

import pytest
from sink_contract import SinkContract, new_fake_key

from keyward.errors import ConfigError, PublishError
from keyward.sinks.null import NullSink


@pytest.fixture
def break_sink():
    @contextlib.contextmanager
    def broken(sink):
        sink.fail_next("disk on fire")
        yield

    return broken


class TestNullSinkContract(SinkContract):
    @pytest.fixture
    def sink(self):
        return NullSink("default")


def test_publish_when_called_records_key_id_and_count():
    sink = NullSink("default")
    sink.publish(new_fake_key(), "key-1")
    sink.publish(new_fake_key(), "key-2")
    assert (sink.last_key_id, sink.publish_count) == ("key-2", 2)
    assert sink.describe() == "null (pool default, last key id key-2)"


def test_fail_next_when_set_fails_once_then_publishes():
    sink = NullSink("default")
    sink.fail_next("simulated")
    with pytest.raises(PublishError, match="null sink of pool default: simulated"):
        sink.publish(new_fake_key(), "key-1")
    key = new_fake_key()
    sink.publish(key, "key-2")
    assert sink.read() == key


def test_null_sink_when_given_options_raises_config_error():
    with pytest.raises(ConfigError, match="unknown option 'path'"):
        NullSink("default", path="/x")
