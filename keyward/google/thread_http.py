"""One parsed API for many threads, each with its own connection.

httplib2 is not thread-safe, so a client per worker thread was the rule; but each client parses
its own copy of the discovery document (about 1 MB for Monitoring), which is memory a daemon
holds for nothing. googleapiclient only ever calls `http.request(...)` on the object an API is
built with, so an object that sends each request through a connection of the calling thread
lets every worker share one API (google-api-python-client's own advice for threads is the same:
a new Http per thread, the service built once).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class PerThreadHttp:
    """An httplib2-like object: `request` goes through the calling thread's connection, made by
    `make()` on first use; `close` closes every thread's connection (a later request reopens)."""

    def __init__(self, make: Callable[[], Any]):
        self._make = make
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[Any] = []

    def _mine(self) -> Any:
        http = getattr(self._local, "http", None)
        if http is None:
            http = self._local.http = self._make()
            with self._lock:
                self._all.append(http)
        return http

    def request(self, *args: Any, **kwargs: Any) -> Any:
        return self._mine().request(*args, **kwargs)

    def close(self) -> None:
        with self._lock:
            made, self._all = self._all, []
        self._local = threading.local()
        for http in made:
            close = getattr(http, "close", None)
            if callable(close):
                close()
