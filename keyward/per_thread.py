"""A value of each thread, made on first use: for what must not cross threads (an httplib2
connection) and for what may be shared but is cheaper to hand out without a lock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerThread(Generic[T]):
    """`get()` returns the calling thread's value, made by `make()` the first time; `drain()`
    returns every distinct value made so far, once each, and forgets them all (a later `get`
    makes a new one), so whoever closes them closes each exactly once."""

    def __init__(self, make: Callable[[], T]):
        self._make = make
        self._local = threading.local()
        self._lock = threading.Lock()
        self._made: list[T] = []

    def get(self) -> T:
        value = getattr(self._local, "value", None)
        if value is None:
            value = self._local.value = self._make()
            with self._lock:
                if all(value is not other for other in self._made):
                    self._made.append(value)
        return value

    def drain(self) -> list[T]:
        with self._lock:
            made, self._made = self._made, []
            self._local = threading.local()
        return made
