"""A sink that publishes nowhere: for dry runs, and a test double for the publishing service.

It keeps the last key in memory only, so `read` answers as a real sink would; `fail_next` makes the
next publish fail the way a broken sink does, to exercise error paths without breaking a disk.
"""

from __future__ import annotations

import logging

from keyward.errors import PublishError
from keyward.sinks.base import Sink

log = logging.getLogger(__name__)


class NullSink(Sink):
    """Accepts every key, remembers the last one in memory, writes nothing."""

    type_name = "null"

    def __init__(self, pool: str, **options: object) -> None:
        super().__init__(pool, **options)
        self._secret: str | None = None
        self.last_key_id: str | None = None
        self.publish_count = 0
        self._fail_reason: str | None = None
        self._generation = 0  # counts changes: only this object changes what it holds

    def fail_next(self, reason: str = "simulated failure") -> None:
        """Make the next `publish` raise PublishError with `reason`, keeping the current key."""
        self._fail_reason = reason

    def publish(self, secret: str, key_id: str) -> None:
        if self._fail_reason is not None:
            reason, self._fail_reason = self._fail_reason, None
            raise PublishError(f"null sink of pool {self.pool}: {reason}")
        self._secret = secret
        self.last_key_id = key_id
        self.publish_count += 1
        self._generation += 1
        log.debug("null sink of pool %s: would publish key %s", self.pool, key_id)

    def read(self) -> str | None:
        return self._secret

    def change_marker(self) -> int:
        return self._generation

    def withdraw(self) -> None:
        self._secret = None
        self.last_key_id = None
        self._generation += 1

    def describe(self) -> str:
        return f"null (pool {self.pool}, last key id {self.last_key_id or '-'})"
