"""What every publish sink promises, as one test class every sink's tests inherit.

A subclass provides two fixtures: `sink`, a fresh sink with nothing published, and `break_sink`,
a callable returning a context manager inside which the sink's `publish` must fail.
"""

from __future__ import annotations

import secrets
import string

import pytest

from keyward.errors import PublishError

_KEY_CHARS = string.ascii_letters + string.digits + "-_"


def new_fake_key(kind: str = "standard") -> str:
    """Return a random key-shaped string, made at run time so no key ever sits in a file."""
    if kind == "auth":
        return "AQ." + secrets.token_urlsafe(32)
    return "AIza" + "".join(secrets.choice(_KEY_CHARS) for _ in range(35))


class SinkContract:
    def test_read_when_nothing_published_returns_none(self, sink):
        assert sink.read() is None

    @pytest.mark.parametrize("kind", ["standard", "auth"])
    def test_publish_when_new_read_returns_key(self, sink, kind):
        key = new_fake_key(kind)
        sink.publish(key, "key-1")
        assert sink.read() == key

    def test_publish_when_repeated_read_returns_latest_key(self, sink):
        keys = [new_fake_key() for _ in range(3)]
        for n, key in enumerate(keys):
            sink.publish(key, f"key-{n}")
        assert sink.read() == keys[-1]

    def test_describe_and_repr_when_published_hide_secret(self, sink):
        key = new_fake_key()
        sink.publish(key, "key-1")
        assert sink.describe()
        assert key not in sink.describe()
        assert key not in repr(sink)
        assert key[4:] not in repr(sink)

    def test_publish_when_sink_broken_raises_and_keeps_previous_key(self, sink, break_sink):
        old, new = new_fake_key(), new_fake_key()
        sink.publish(old, "key-old")
        with break_sink(sink):
            with pytest.raises(PublishError) as caught:
                sink.publish(new, "key-new")
        message = str(caught.value)
        assert new not in message and old not in message
        assert new[4:] not in message
        assert sink.read() == old

    def test_change_marker_when_key_replaced_or_withdrawn_changes_or_is_unknown(self, sink):
        sink.publish(new_fake_key(), "key-1")
        first = sink.change_marker()
        sink.publish(new_fake_key(), "key-2")
        second = sink.change_marker()
        assert second is None or second != first
        sink.withdraw()
        gone = sink.change_marker()
        assert gone is None or gone != second

    def test_withdraw_when_published_leaves_nothing(self, sink):
        sink.publish(new_fake_key(), "key-1")
        sink.withdraw()
        assert sink.read() is None
        sink.withdraw()  # withdrawing twice is not an error
