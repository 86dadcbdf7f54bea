"""One parsed API for many threads, each with its own connection.

httplib2 is not thread-safe, so a client per worker thread was the rule; but each client parses
its own copy of the discovery document (about 1 MB for Monitoring), which is memory a daemon
holds for nothing. googleapiclient only ever calls `http.request(...)` on the object an API is
built with, so an object that sends each request through a connection of the calling thread
lets every worker share one API (google-api-python-client's own advice for threads is the same:
a new Http per thread, the service built once).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keyward.per_thread import PerThread


class PerThreadHttp:
    """An httplib2-like object: `request` goes through the calling thread's connection, made by
    `make()` on first use; `close` closes every thread's connection (a later request reopens)."""

    def __init__(self, make: Callable[[], Any]):
        self._connections: PerThread[Any] = PerThread(make)

    def request(self, *args: Any, **kwargs: Any) -> Any:
        return self._connections.get().request(*args, **kwargs)

    def close(self) -> None:
        for http in self._connections.drain():
            close = getattr(http, "close", None)
            if callable(close):
                close()
