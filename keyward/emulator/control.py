"""`Emulator`: start and stop the server, and set the scene (projects, keys, faults, IAM, policy,
time) from Python. The admin HTTP endpoints (admin.py) call these same methods, so a test in
another process gets exactly what an in-process test gets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from keyward.emulator import faults
from keyward.emulator.admin import Admin
from keyward.emulator.apikeys import ApiKeys
from keyward.emulator.errors import RpcError
from keyward.emulator.generativelanguage import GenerativeLanguage
from keyward.emulator.generativelanguage import method_name as gemini_method
from keyward.emulator.metrics_scopes import MAX_MONITORED, MetricsScopes
from keyward.emulator.monitoring import Monitoring
from keyward.emulator.operations import Operations
from keyward.emulator.server import Router, Server, make_handler
from keyward.emulator.serviceusage import ServiceUsage
from keyward.emulator.state import Project, State
from keyward.errors import NotFound, UsageError


class Emulator:
    """A local stand-in for API Keys, Gemini, Monitoring and Service Usage over real HTTP."""

    def __init__(self, clock: Callable[[], float] | None = None):
        self.state = State(clock)
        self._gemini = GenerativeLanguage(self.state)
        routes = [*Admin(self).routes(), *ApiKeys(self.state).routes(),
                  *Operations(self.state).routes(), *self._gemini.routes(),
                  *Monitoring(self.state).routes(), *MetricsScopes(self.state).routes(),
                  *ServiceUsage(self.state).routes()]
        self._router = Router(self.state, routes)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Emulator:
        """Serve in a daemon thread; return self. `port=0` picks a free port."""
        if self._server is not None:
            raise UsageError("the emulator is already running")
        self._server = Server((host, port), make_handler(self._router))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="google-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Emulator:
        return self if self._server else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> str:
        """`HOST:PORT` of the running server (what KEYWARD_GOOGLE_EMULATOR_HOST holds)."""
        if self._server is None:
            raise UsageError("the emulator is not running")
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    # -- settings -------------------------------------------------------------------------------

    @property
    def reject_standard_keys(self) -> bool:
        return self.state.reject_standard_keys

    @reject_standard_keys.setter
    def reject_standard_keys(self, value: bool) -> None:
        with self.state.lock:
            self.state.reject_standard_keys = bool(value)

    @property
    def monitoring_lag_seconds(self) -> float:
        return self.state.monitoring_lag_seconds

    @monitoring_lag_seconds.setter
    def monitoring_lag_seconds(self, value: float) -> None:
        with self.state.lock:
            self.state.monitoring_lag_seconds = max(0.0, float(value))

    @property
    def monitoring_reads_per_minute(self) -> int | None:
        """Cloud Monitoring reads each quota project may make in any 60 s (None: no quota)."""
        return self.state.monitoring_reads_per_minute

    @monitoring_reads_per_minute.setter
    def monitoring_reads_per_minute(self, value: int | None) -> None:
        if value is not None and int(value) < 1:
            raise UsageError("monitoring_reads_per_minute must be at least 1, or None for no quota")
        with self.state.lock:
            self.state.monitoring_reads_per_minute = None if value is None else int(value)
            self.state.monitoring_reads = {}

    @property
    def monitoring_page_size(self) -> int:
        """The most time series one timeSeries.list page holds, whatever pageSize asks."""
        return self.state.monitoring_page_size

    @monitoring_page_size.setter
    def monitoring_page_size(self, value: int) -> None:
        if not 1 <= int(value) <= 100_000:
            raise UsageError("monitoring_page_size must be between 1 and 100000")
        with self.state.lock:
            self.state.monitoring_page_size = int(value)

    @property
    def operation_polls(self) -> int:
        """How many reads of a new operation answer "not done" before it is done."""
        return self.state.operation_polls

    @operation_polls.setter
    def operation_polls(self, value: int) -> None:
        with self.state.lock:
            self.state.operation_polls = max(0, int(value))

    @property
    def operation_seconds(self) -> float:
        """Seconds after which an operation is done even if nobody polls it."""
        return self.state.operation_seconds

    @operation_seconds.setter
    def operation_seconds(self, value: float) -> None:
        with self.state.lock:
            self.state.operation_seconds = max(0.0, float(value))

    @property
    def already_exists_in(self) -> str:
        """Where a create reusing a taken key id fails: "operation" (default) or "call"."""
        return self.state.already_exists_in

    @already_exists_in.setter
    def already_exists_in(self, value: str) -> None:
        if value not in ("operation", "call"):
            raise UsageError("already_exists_in must be 'operation' or 'call'")
        with self.state.lock:
            self.state.already_exists_in = value

    # -- scene ----------------------------------------------------------------------------------

    def _project(self, project_id: str) -> Project:
        project = self.state.find_project(project_id)
        if project is None:
            raise NotFound(f"the emulator has no project {project_id!r}")
        return project

    def add_project(self, project_id: str, number: str,
                    limits: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:
        """Create (or replace) a project with per-model limits {"model": {"rpm", "tpm", "rpd"}}."""
        try:
            project = self.state.add_project(project_id, str(number), limits)
        except (ValueError, TypeError, AttributeError) as exc:
            raise UsageError(f"bad project: {exc}") from None
        return {"projectId": project.project_id, "number": project.number,
                "limits": project.limits}

    def create_manual_key(self, project_id: str, *, kind: str = "auth", display_name: str = "",
                          service_account: str | None = None) -> dict[str, Any]:
        """Make a key as a person would in AI Studio; return the Key resource plus `keyString`.

        Auth keys are bound to a service account (a default one when none is named).
        """
        if kind not in ("auth", "standard"):
            raise UsageError("kind must be 'auth' or 'standard'")
        with self.state.lock:
            project = self._project(project_id)
            email = service_account or ""
            if kind == "auth" and not email:
                email = f"gemini-api@{project.project_id}.iam.gserviceaccount.com"
            key = self.state.add_key(project, None, display_name=display_name,
                                     service_account_email=email if kind == "auth" else "",
                                     kind=kind)
            return key.resource(with_string=True)

    def keys(self, project_id: str, show_deleted: bool = False) -> list[dict[str, Any]]:
        """Return the project's Key resources, oldest first, without key strings."""
        with self.state.lock:
            project = self._project(project_id)
            found = [k for k in self.state.keys.values() if k.project_number == project.number
                     and (show_deleted or k.delete_time is None)]
            return [k.resource() for k in sorted(found, key=lambda k: k.create_time)]

    def key_string_valid(self, key_string: str) -> bool:
        """Return whether Gemini would accept `key_string` right now (quota aside)."""
        from keyward.emulator.routing import Request

        request = Request("POST", "/v1beta/models/-:generateContent",
                          headers={"x-goog-api-key": key_string})
        method = gemini_method("v1beta", "GenerateContent")
        with self.state.lock:
            try:
                project, key = self._gemini._authenticate(request, method)
                self._gemini._admit(request, project, key, method)
            except RpcError:
                return False
            return True

    def inject_fault(self, service: str = "*", path_regex: str | None = None, status: int = 503,
                     count: int = 1, latency_ms: int = 0, malformed: bool = False) -> None:
        """Make the next `count` matching requests slow, fail with `status`, or return bad JSON."""
        try:
            faults.arm(self.state, faults.Fault(service, path_regex, int(status), int(count),
                                                int(latency_ms), bool(malformed)))
        except (ValueError, TypeError) as exc:
            raise UsageError(f"bad fault: {exc}") from None

    def clear_faults(self) -> None:
        """Disarm every fault not yet spent."""
        with self.state.lock:
            self.state.faults = []

    def deny_permission(self, project_id: str, permission: str, denied: bool = True) -> None:
        """Make calls needing `permission` in the project fail with 403 IAM_PERMISSION_DENIED."""
        with self.state.lock:
            target = self._project(project_id).denied
            if denied:
                target.add(permission)
            else:
                target.discard(permission)

    def disable_service(self, project_id: str, service: str, disabled: bool = True) -> None:
        """Turn an API off (or back on) in the project: its calls get 403 SERVICE_DISABLED."""
        with self.state.lock:
            target = self._project(project_id).disabled
            if disabled:
                target.add(service)
            else:
                target.discard(service)

    def block_service_account_keys(self, project_id: str, blocked: bool = True) -> None:
        """Enforce org policy iam.managed.disableServiceAccountApiKeyCreation on the project."""
        with self.state.lock:
            self._project(project_id).sa_keys_blocked = bool(blocked)

    def add_to_metrics_scope(self, scoping_project_id: str, project_id: str) -> None:
        """Make the metrics scope hosted by the first project monitor the second (as adding it in
        the console does); a scope monitors at most 375 projects besides itself."""
        with self.state.lock:
            scoping, member = self._project(scoping_project_id), self._project(project_id)
            added = self.state.metrics_scopes.setdefault(scoping.number, {})
            if member.number == scoping.number or member.number in added:
                return
            if len(added) >= MAX_MONITORED:
                raise UsageError(f"the metrics scope of {scoping_project_id} already monitors "
                                 f"{MAX_MONITORED} projects")
            added[member.number] = self.state.now()

    def remove_from_metrics_scope(self, scoping_project_id: str, project_id: str) -> None:
        """Stop the scope of the first project monitoring the second."""
        with self.state.lock:
            scoping, member = self._project(scoping_project_id), self._project(project_id)
            self.state.metrics_scopes.get(scoping.number, {}).pop(member.number, None)

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward by `seconds`."""
        try:
            self.state.clock.advance(float(seconds))
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    def now(self) -> float:
        return self.state.now()

    def reset(self) -> None:
        """Forget projects, keys, operations, traffic, faults and settings (not the clock)."""
        self.state.reset()

    def snapshot(self) -> dict[str, Any]:
        """Return a summary of the state for `GET /_emulator/state` (never key strings)."""
        with self.state.lock:
            return {
                "now": self.state.now(),
                "projects": [{"projectId": p.project_id, "number": p.number, "limits": p.limits,
                              "deniedPermissions": sorted(p.denied),
                              "disabledServices": sorted(p.disabled),
                              "serviceAccountKeysBlocked": p.sa_keys_blocked}
                             for p in self.state.projects.values()],
                "keys": [k.resource() for k in self.state.keys.values()],
                "faults": [f.describe() for f in self.state.faults],
                "calls": len(self.state.calls),
                "settings": {"operationPolls": self.state.operation_polls,
                             "operationSeconds": self.state.operation_seconds,
                             "alreadyExistsIn": self.state.already_exists_in,
                             "rejectStandardKeys": self.state.reject_standard_keys,
                             "monitoringLagSeconds": self.state.monitoring_lag_seconds,
                             "monitoringReadsPerMinute": self.state.monitoring_reads_per_minute,
                             "monitoringPageSize": self.state.monitoring_page_size},
                "metricsScopes": {scope: sorted(added)
                                  for scope, added in self.state.metrics_scopes.items()},
            }
