"""Injected faults: latency, failures with a chosen HTTP status, and malformed bodies.

A fault matches requests by service (`*`, a full name like `apikeys.googleapis.com` or its short
form `apikeys`) and optionally a regex searched in the path; it fires for the next `count`
matching requests and is then spent. `status` 0 means "latency only, then answer normally".
Admin endpoints (`/_emulator/...`) are never faulted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from keyward.emulator.state import State


@dataclass
class Fault:
    """One armed fault."""

    service: str = "*"
    path_regex: str | None = None
    status: int = 503
    count: int = 1
    latency_ms: int = 0
    malformed: bool = False

    def matches(self, service: str, path: str) -> bool:
        if self.count <= 0:
            return False
        if self.service not in ("*", service, service.split(".")[0]):
            return False
        return self.path_regex is None or re.search(self.path_regex, path) is not None

    def describe(self) -> dict[str, Any]:
        return {"service": self.service, "pathRegex": self.path_regex, "status": self.status,
                "count": self.count, "latencyMs": self.latency_ms, "malformed": self.malformed}


def arm(state: State, fault: Fault) -> None:
    """Add `fault` to the queue; raise ValueError for nonsense (bad regex, count < 1)."""
    if fault.count < 1:
        raise ValueError("count must be at least 1")
    if fault.latency_ms < 0:
        raise ValueError("latency_ms must not be negative")
    if fault.status and not 400 <= fault.status <= 599:
        raise ValueError("status must be an HTTP error status (400-599) or 0")
    if fault.path_regex is not None:
        re.compile(fault.path_regex)
    with state.lock:
        state.faults.append(fault)


def take(state: State, service: str, path: str) -> Fault | None:
    """Return the first armed fault matching this request, spending one of its uses."""
    with state.lock:
        for fault in state.faults:
            if fault.matches(service, path):
                fault.count -= 1
                snapshot = Fault(**{**fault.__dict__, "count": 1})
                state.faults = [f for f in state.faults if f.count > 0]
                return snapshot
        return None
