"""Cloud Monitoring's Metrics Scopes API (v1), `locations.global.metricsScopes.get`: which projects
the metrics scope hosted by a scoping project monitors.

Like Google: the scope and its monitored projects are named by project NUMBER in answers,
whatever id or number the request used; the scoping project is listed among its own monitored
projects; reading a scope needs `resourcemanager.projects.get` on the scoping project. Membership
is set from tests through `Emulator.add_to_metrics_scope` (or `POST /_emulator/metricsScopes`).
A scope monitors at most `MAX_MONITORED` projects, as at Google.
"""

from __future__ import annotations

import re

from keyward.emulator import access
from keyward.emulator.clock import rfc3339
from keyward.emulator.routing import Reply, Request, Route, route
from keyward.emulator.state import Project, State

SERVICE = "monitoring.googleapis.com"
PREFIX = "locations/global/metricsScopes/"
MAX_MONITORED = 375


def members(state: State, scoping: Project) -> set[str]:
    """Numbers of every project the scope of `scoping` monitors, itself included (hold the lock)."""
    return {scoping.number, *state.metrics_scopes.get(scoping.number, {})}


class MetricsScopes:
    """Handler for metricsScopes.get over one State."""

    def __init__(self, state: State):
        self.state = state

    def routes(self) -> list[Route]:
        return [route(SERVICE, "GET", r"/v1/locations/global/metricsScopes/(?P<s>[^/:]+)", self.get)]

    def get(self, req: Request, m: re.Match[str]) -> Reply:
        with self.state.lock:
            scoping = access.check_access(self.state, m["s"], SERVICE, "resourcemanager.projects.get",
                                          resource=f"projects/{m['s']}")
            added = self.state.metrics_scopes.get(scoping.number, {})
            created = min([*added.values(), self.state.now()])
            listed = [(scoping.number, created), *sorted(added.items())]
            name = PREFIX + scoping.number
            return 200, {
                "name": name,
                "createTime": rfc3339(created),
                "updateTime": rfc3339(max(t for _, t in listed)),
                "monitoredProjects": [{"name": f"{name}/projects/{number}", "createTime": rfc3339(at)}
                                      for number, at in listed],
            }
