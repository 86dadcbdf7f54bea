"""API Keys API v2 (`apikeys.googleapis.com`): create, get, getKeyString, list, patch, delete,
undelete and lookupKey, as the discovery document `apikeys.v2` describes them.

Promises that match Google: a key reads as 404 until its create operation is done; the etag in
the create answer is stale at once (the key is touched again); a key id stays taken while a key,
even a deleted one (30 days), holds it, and a create reusing it is accepted and then fails in the
operation with ALREADY_EXISTS; `Key.name` always uses the project number; deleted keys stay listable with
`showDeleted` and undeletable for 30 days, and stop working at Gemini at once; mutations answer
with Operations (see operations.py). Each method checks its real IAM permission and whether the
API is enabled in the project.
"""

from __future__ import annotations

import re
from typing import Any

from keyward.emulator import access, errors
from keyward.emulator.errors import RpcError
from keyward.emulator.routing import Reply, Request, Route, page, route
from keyward.emulator.state import Key, Project, State

SERVICE = "apikeys.googleapis.com"
UNDELETE_WINDOW = 30 * 86400
ORG_CONSTRAINT = "iam.managed.disableServiceAccountApiKeyCreation"

_KEY_ID_RE = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
_UUID_LIKE_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PARENT = r"/v2/projects/(?P<p>[^/]+)/locations/(?P<loc>[^/]+)/keys"
_KEY = _PARENT + r"/(?P<k>[^/:]+)"
_PATCHABLE = {"displayName", "restrictions", "annotations"}


def check_access(state: State, ref: str, permission: str, resource: str | None = None) -> Project:
    """Return project `ref` if the API Keys `permission` is usable there (see access.py)."""
    return access.check_access(
        state, ref, SERVICE, permission,
        resource or f"//{SERVICE}/projects/{ref}/locations/global")


def validate_key_id(key_id: str) -> None:
    """Raise 400 unless `key_id` is an acceptable keyId."""
    if not _KEY_ID_RE.fullmatch(key_id) or _UUID_LIKE_RE.fullmatch(key_id):
        raise errors.invalid_argument(
            f"Invalid key_id: '{key_id}'. The key_id must match the regular expression "
            "[a-z]([a-z0-9-]{0,61}[a-z0-9])? and must not be in UUID format.", "key_id")


class ApiKeys:
    """Handlers for the API Keys API over one State."""

    def __init__(self, state: State):
        self.state = state

    def routes(self) -> list[Route]:
        return [
            route(SERVICE, "GET", r"/v2/keys:lookupKey", self.lookup),
            route(SERVICE, "POST", _PARENT, self.create),
            route(SERVICE, "GET", _PARENT, self.list),
            route(SERVICE, "GET", _KEY + "/keyString", self.get_key_string),
            route(SERVICE, "POST", _KEY + ":undelete", self.undelete),
            route(SERVICE, "GET", _KEY, self.get),
            route(SERVICE, "PATCH", _KEY, self.patch),
            route(SERVICE, "DELETE", _KEY, self.delete),
        ]

    # -- helpers -------------------------------------------------------------------------------

    def _key(self, m: re.Match[str], permission: str) -> tuple[Project, Key]:
        loc = m["loc"]
        if loc != "global":
            raise errors.invalid_argument(f"Location '{loc}' is not supported; use 'global'.")
        ref, key_id = m["p"], m["k"]
        project = self.state.find_project(ref)
        number = project.number if project else ref
        name = f"projects/{number}/locations/global/keys/{key_id}"
        project = check_access(self.state, ref, permission, f"//{SERVICE}/{name}")
        key = self.state.visible_key(name)
        if key is None:
            raise errors.not_found(f"Key '{name}' not found.")
        return project, key

    def _operation(self, project: Project, key: Key, with_string: bool = False) -> Reply:
        body = {"@type": "type.googleapis.com/google.api.apikeys.v2.Key",
                **key.resource(with_string=with_string)}
        op = self.state.new_operation(project, body)
        return 200, {"name": op.name}

    # -- methods -------------------------------------------------------------------------------

    def create(self, req: Request, m: re.Match[str]) -> Reply:
        with self.state.lock:
            if m["loc"] != "global":
                raise errors.invalid_argument(f"Location '{m['loc']}' is not supported.")
            project = check_access(self.state, m["p"], "apikeys.keys.create")
            body = req.json_object()
            key_id = req.arg("keyId")
            if key_id is not None:
                validate_key_id(key_id)
                name = f"projects/{project.number}/locations/global/keys/{key_id}"
                taken = self._taken(name)
                if taken is not None:
                    return self._refuse_taken(project, name, taken)
            email = str(body.get("serviceAccountEmail") or "")
            if email:
                if not _EMAIL_RE.fullmatch(email):
                    raise errors.invalid_argument(
                        f"Invalid service account email: '{email}'.", "key.service_account_email")
                if project.sa_keys_blocked:
                    raise _org_policy_error(project)
            restrictions = body.get("restrictions") or {}
            _validate_restrictions(restrictions)
            key = self.state.add_key(
                project, key_id, display_name=str(body.get("displayName") or ""),
                service_account_email=email, restrictions=restrictions,
                annotations=body.get("annotations") or {})
            body = {"@type": "type.googleapis.com/google.api.apikeys.v2.Key",
                    **key.resource(with_string=True)}
            op = self.state.new_operation(project, body, key=key)
            # Google's backend touches a new key once more after the operation was written, so
            # the etag in the create answer is already stale for a delete.
            key.touch(self.state.now())
            return 200, {"name": op.name}

    def _taken(self, name: str) -> Key | None:
        """Return the key holding `name`'s id (deleted ones included for 30 days), or None.
        A key deleted longer ago is purged and its id is free again."""
        key = self.state.keys.get(name)
        if key is not None and key.delete_time is not None \
                and self.state.now() - key.delete_time > UNDELETE_WINDOW:
            del self.state.keys[name]
            self.state.key_names_by_string.pop(key.key_string, None)
            return None
        return key

    def _refuse_taken(self, project: Project, name: str, key: Key) -> Reply:
        """Refuse a create whose id is taken: at once (409) or, like Google often does, with an
        accepted call whose operation finishes with ALREADY_EXISTS."""
        message = f"Key '{name}' already exists."
        if self.state.already_exists_in == "call":
            raise RpcError("ALREADY_EXISTS", message)
        op = self.state.new_operation(project, error={"code": 6, "message": message})
        return 200, {"name": op.name}

    def get(self, req: Request, m: re.Match[str]) -> Reply:
        with self.state.lock:
            _, key = self._key(m, "apikeys.keys.get")
            return 200, key.resource()

    def get_key_string(self, req: Request, m: re.Match[str]) -> Reply:
        with self.state.lock:
            _, key = self._key(m, "apikeys.keys.getKeyString")
            return 200, {"keyString": key.key_string}

    def list(self, req: Request, m: re.Match[str]) -> Reply:
        with self.state.lock:
            project = check_access(self.state, m["p"], "apikeys.keys.list")
            show_deleted = req.flag("showDeleted")
            keys = sorted((k for k in self.state.keys.values()
                           if k.project_number == project.number
                           and (show_deleted or k.delete_time is None)
                           and self.state.visible_key(k.name) is not None),
                          key=lambda k: (k.create_time, k.key_id))
            chunk, token = page(keys, req, default_size=300, max_size=300)
            out: dict[str, Any] = {"keys": [k.resource() for k in chunk]}
            if token:
                out["nextPageToken"] = token
            return 200, out

    def patch(self, req: Request, m: re.Match[str]) -> Reply:
        with self.state.lock:
            project, key = self._key(m, "apikeys.keys.update")
            body = req.json_object()
            mask = [f.strip() for f in (req.arg("updateMask") or "").split(",") if f.strip()]
            fields = mask or [f for f in _PATCHABLE if f in body]
            unknown = [f for f in fields if f not in _PATCHABLE]
            if unknown:
                raise errors.invalid_argument(
                    f"Invalid update_mask: {', '.join(unknown)} cannot be updated.", "update_mask")
            if "restrictions" in fields:
                _validate_restrictions(body.get("restrictions") or {})
                key.restrictions = dict(body.get("restrictions") or {})
            if "displayName" in fields:
                key.display_name = str(body.get("displayName") or "")
            if "annotations" in fields:
                key.annotations = dict(body.get("annotations") or {})
            key.touch(self.state.now())
            return self._operation(project, key)

    def delete(self, req: Request, m: re.Match[str]) -> Reply:
        with self.state.lock:
            project, key = self._key(m, "apikeys.keys.delete")
            etag = req.arg("etag")
            if etag and etag != key.etag:
                raise RpcError("ABORTED", "The etag provided does not match the current etag "
                               f"of key '{key.name}'. Get the key and retry.")
            if key.delete_time is None:
                now = self.state.now()
                key.delete_time = now
                key.touch(now)
            return self._operation(project, key)

    def undelete(self, req: Request, m: re.Match[str]) -> Reply:
        with self.state.lock:
            project, key = self._key(m, "apikeys.keys.undelete")
            if key.delete_time is None:
                raise RpcError("FAILED_PRECONDITION", f"Key '{key.name}' is not deleted.")
            if self.state.now() - key.delete_time > UNDELETE_WINDOW:
                raise errors.not_found(f"Key '{key.name}' not found.")
            key.delete_time = None
            key.touch(self.state.now())
            return self._operation(project, key)

    def lookup(self, req: Request, m: re.Match[str]) -> Reply:
        with self.state.lock:
            secret = req.arg("keyString") or ""
            key = self.state.key_by_string(secret) if secret else None
            if key is not None and self.state.visible_key(key.name) is None:
                key = None
            if key is None or key.delete_time is not None:
                # Google answers lookups of unknown strings with NOT_FOUND, never echoing them.
                raise errors.not_found("The key string was not found.")
            check_access(self.state, key.project_number, "apikeys.keys.lookup",
                         f"//{SERVICE}/{key.name}")
            return 200, {"parent": f"projects/{key.project_number}/locations/global",
                         "name": key.name}


def _validate_restrictions(restrictions: Any) -> None:
    if not isinstance(restrictions, dict):
        raise errors.invalid_argument("restrictions must be an object", "key.restrictions")
    for target in restrictions.get("apiTargets") or []:
        if not isinstance(target, dict) or not target.get("service"):
            raise errors.invalid_argument("Each api target needs a service.",
                                          "key.restrictions.api_targets")


def _org_policy_error(project: Project) -> RpcError:
    description = ("Creating API keys bound to service accounts is disallowed by the "
                   f"organization policy constraint '{ORG_CONSTRAINT}'.")
    return RpcError("FAILED_PRECONDITION", description, [
        errors.precondition_failure(f"constraints/{ORG_CONSTRAINT}", f"projects/{project.number}",
                                    description),
    ])
