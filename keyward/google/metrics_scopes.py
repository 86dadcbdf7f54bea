"""Cloud Monitoring's Metrics Scopes API (v1): which projects a scoping project's metrics scope
monitors.

Every project hosts a metrics scope; an operator can add other projects to it (a scope monitors
at most 375), and `timeSeries.list` on the scoping project then returns the series of every
monitored project, each labelled with its `project_id`. keyward asks for the membership so that
a project with no traffic (no series at all) is known to be covered, not silently skipped.
Google names monitored projects by number in its answers, whatever was used to add them.
"""

from __future__ import annotations

from dataclasses import dataclass

from keyward.errors import Transient
from keyward.google.transport import DiscoveryClient

SCOPE_PREFIX = "locations/global/metricsScopes/"


@dataclass(frozen=True)
class MetricsScope:
    """A scoping project's metrics scope: its own number and its live members' numbers."""

    scope: str  # the scoping project as configured (id or number)
    number: str | None  # the scoping project's number, from the scope's name
    members: frozenset[str]  # numbers of the monitored projects (tombstoned ones left out)


class MetricsScopesClient(DiscoveryClient):
    """A small client for `locations.global.metricsScopes.get`; pass `api` to aim it elsewhere."""

    API = ("monitoring", "v1")

    def __init__(self, *args, pace=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.pace = pace

    def get(self, scope: str) -> MetricsScope:
        """Return the metrics scope hosted by project `scope` (id or number).

        Raise PermissionMissing (resourcemanager.projects.get) or Transient like any call.
        """
        name = SCOPE_PREFIX + scope

        def request():
            if self.pace is not None:
                self.pace.acquire()
            return self.api.locations().global_().metricsScopes().get(name=name)

        body = self._caller.run(request, action="metrics_scope", project=scope)
        own = _last_segment(body.get("name"), SCOPE_PREFIX)
        members: set[str] = set()
        for item in body.get("monitoredProjects") or []:
            if not isinstance(item, dict) or item.get("isTombstoned") is True:
                continue
            number = _last_segment(item.get("name"), SCOPE_PREFIX, "/projects/")
            if number is None:
                raise Transient(f"reading the metrics scope of {scope}: a monitored project has "
                                "no usable name — keyward retries", reason="MALFORMED")
            members.add(number)
        return MetricsScope(scope, own, frozenset(members))


def _last_segment(name: object, prefix: str, marker: str | None = None) -> str | None:
    """The last path segment of a resource `name` that starts with `prefix` (and holds `marker`)."""
    if not isinstance(name, str) or not name.startswith(prefix):
        return None
    if marker is not None and marker not in name:
        return None
    last = name.rsplit("/", 1)[-1]
    return last or None
