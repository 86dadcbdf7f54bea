"""Long-running operations of the API Keys API (`GET /v2/operations/{id}`).

Like Google's, an operation is not done on its first reads: it answers `{"name": ...}` alone
(proto3 JSON leaves `done: false` out) for `State.operation_polls` reads or until
`State.operation_seconds` have passed, then `{"name", "done": true, "response": {...}}` (or
`"error"`). A key being created reads as 404 until its operation is done; a client that never
polls finds it once the seconds have passed.
"""

from __future__ import annotations

import re
from typing import Any

from keyward.emulator import errors
from keyward.emulator.apikeys import SERVICE, check_access
from keyward.emulator.routing import Reply, Request, Route, route
from keyward.emulator.state import State


class Operations:
    """Handler for reading operations over one State."""

    def __init__(self, state: State):
        self.state = state

    def routes(self) -> list[Route]:
        return [route(SERVICE, "GET", r"/v2/(?P<name>operations/[^/]+)", self.get)]

    def get(self, req: Request, m: re.Match[str]) -> Reply:
        with self.state.lock:
            op = self.state.operations.get(m["name"])
            if op is None:
                raise errors.not_found(f"Operation '{m['name']}' not found.")
            check_access(self.state, op.project_number, "serviceusage.operations.get",
                         f"//{SERVICE}/{op.name}")
            if not self.state.operation_done(op):
                op.polls_left -= 1
                return 200, {"name": op.name}
            body: dict[str, Any] = {"name": op.name, "done": True}
            if op.error is not None:
                body["error"] = op.error
            else:
                body["response"] = op.response
            return 200, body
