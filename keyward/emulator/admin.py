"""Admin endpoints under `/_emulator/` so another process (the demo, a daemon test) can set the
scene over HTTP. Each endpoint calls the `Emulator` method of the same purpose with a JSON body in
camelCase; errors come back as rpc Status bodies like the rest of the emulator.

    POST /_emulator/projects   {projectId, number, limits?}
    POST /_emulator/keys       {projectId, kind?, displayName?, serviceAccount?} -> Key + keyString
    GET  /_emulator/keys?projectId=P&showDeleted=true                            -> {keys: [...]}
    POST /_emulator/keys:check {keyString}                                       -> {valid: bool}
    POST /_emulator/faults     {service?, pathRegex?, status?, count?, latencyMs?, malformed?}
    POST /_emulator/iam        {projectId, permission, denied?=true}
    POST /_emulator/services   {projectId, service, enabled?=false}
    POST /_emulator/policy     {projectId, blockServiceAccountKeys?=true}
    POST /_emulator/clock      {advanceSeconds}                                   -> {now}
    POST /_emulator/metricsScopes {scopingProjectId, projectId, remove?=false}
    POST /_emulator/settings   {operationPolls?, operationSeconds?, alreadyExistsIn?,
                                rejectStandardKeys?, monitoringLagSeconds?,
                                monitoringReadsPerMinute? (null: off), monitoringPageSize?}
    POST /_emulator/reset
    GET  /_emulator/state
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from keyward.emulator import errors
from keyward.emulator.errors import RpcError
from keyward.emulator.routing import Reply, Request, Route, route
from keyward.errors import NotFound, UsageError

if TYPE_CHECKING:
    from keyward.emulator.control import Emulator

SERVICE = "_emulator"


def _need(body: dict[str, Any], *names: str) -> list[Any]:
    missing = [n for n in names if body.get(n) in (None, "")]
    if missing:
        raise errors.invalid_argument(f"missing field(s): {', '.join(missing)}", missing[0])
    return [body[n] for n in names]


class Admin:
    """Admin routes over one Emulator."""

    def __init__(self, emulator: Emulator):
        self.emu = emulator

    def routes(self) -> list[Route]:
        table = [
            ("POST", "projects", self.add_project),
            ("POST", "keys", self.create_key),
            ("GET", "keys", self.list_keys),
            ("POST", "keys:check", self.check_key),
            ("POST", "faults", self.inject_fault),
            ("POST", "iam", self.iam),
            ("POST", "services", self.services),
            ("POST", "policy", self.policy),
            ("POST", "clock", self.clock),
            ("POST", "metricsScopes", self.metrics_scope),
            ("POST", "settings", self.settings),
            ("POST", "reset", self.reset),
            ("GET", "state", self.state),
        ]
        return [route(SERVICE, method, "/_emulator/" + re.escape(path), self._wrap(handler))
                for method, path, handler in table]

    def _wrap(self, handler):
        def run(req: Request, m: re.Match[str]) -> Reply:
            try:
                return 200, handler(req.json_object() if req.method != "GET" else {}, req)
            except NotFound as exc:
                raise RpcError("NOT_FOUND", str(exc)) from None
            except (UsageError, ValueError, TypeError) as exc:
                raise errors.invalid_argument(str(exc)) from None
        return run

    def add_project(self, body: dict[str, Any], req: Request) -> Any:
        project_id, number = _need(body, "projectId", "number")
        return self.emu.add_project(project_id, str(number), body.get("limits"))

    def create_key(self, body: dict[str, Any], req: Request) -> Any:
        (project_id,) = _need(body, "projectId")
        return self.emu.create_manual_key(
            project_id, kind=body.get("kind", "auth"), display_name=body.get("displayName", ""),
            service_account=body.get("serviceAccount"))

    def list_keys(self, body: dict[str, Any], req: Request) -> Any:
        project_id = req.arg("projectId")
        if not project_id:
            raise errors.invalid_argument("missing query parameter projectId", "projectId")
        return {"keys": self.emu.keys(project_id, show_deleted=req.flag("showDeleted"))}

    def check_key(self, body: dict[str, Any], req: Request) -> Any:
        (key_string,) = _need(body, "keyString")
        return {"valid": self.emu.key_string_valid(str(key_string))}

    def inject_fault(self, body: dict[str, Any], req: Request) -> Any:
        self.emu.inject_fault(
            service=body.get("service", "*"), path_regex=body.get("pathRegex"),
            status=body.get("status", 503), count=body.get("count", 1),
            latency_ms=body.get("latencyMs", 0), malformed=bool(body.get("malformed", False)))
        return {}

    def iam(self, body: dict[str, Any], req: Request) -> Any:
        project_id, permission = _need(body, "projectId", "permission")
        self.emu.deny_permission(project_id, permission, denied=bool(body.get("denied", True)))
        return {}

    def services(self, body: dict[str, Any], req: Request) -> Any:
        project_id, service = _need(body, "projectId", "service")
        self.emu.disable_service(project_id, service, disabled=not body.get("enabled", False))
        return {}

    def policy(self, body: dict[str, Any], req: Request) -> Any:
        (project_id,) = _need(body, "projectId")
        self.emu.block_service_account_keys(
            project_id, blocked=bool(body.get("blockServiceAccountKeys", True)))
        return {}

    def clock(self, body: dict[str, Any], req: Request) -> Any:
        self.emu.advance(float(body.get("advanceSeconds", 0)))
        return {"now": self.emu.now()}

    def metrics_scope(self, body: dict[str, Any], req: Request) -> Any:
        scoping, project_id = _need(body, "scopingProjectId", "projectId")
        if body.get("remove"):
            self.emu.remove_from_metrics_scope(str(scoping), str(project_id))
        else:
            self.emu.add_to_metrics_scope(str(scoping), str(project_id))
        return {}

    def settings(self, body: dict[str, Any], req: Request) -> Any:
        if "operationPolls" in body:
            self.emu.operation_polls = int(body["operationPolls"])
        if "operationSeconds" in body:
            self.emu.operation_seconds = float(body["operationSeconds"])
        if "alreadyExistsIn" in body:
            self.emu.already_exists_in = str(body["alreadyExistsIn"])
        if "rejectStandardKeys" in body:
            self.emu.reject_standard_keys = bool(body["rejectStandardKeys"])
        if "monitoringLagSeconds" in body:
            self.emu.monitoring_lag_seconds = float(body["monitoringLagSeconds"])
        if "monitoringReadsPerMinute" in body:
            value = body["monitoringReadsPerMinute"]
            self.emu.monitoring_reads_per_minute = None if value is None else int(value)
        if "monitoringPageSize" in body:
            self.emu.monitoring_page_size = int(body["monitoringPageSize"])
        return self.emu.snapshot()["settings"]

    def reset(self, body: dict[str, Any], req: Request) -> Any:
        self.emu.reset()
        return {}

    def state(self, body: dict[str, Any], req: Request) -> Any:
        return self.emu.snapshot()
