"""The API Keys API (apikeys v2): create, read, list, delete and restore Gemini keys.

`ApiKeysClient` is keyward's only door to that API. It returns plain dicts and dataclasses, never
googleapiclient objects, and raises only keyward errors. Writes return long-running Operations;
`start_create` and `wait_operation` are split so the rotation service can journal the operation
name between them and resume waiting after a crash. Creating is idempotent per key id: a retried
create that finds its key already made returns that key.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from keyward import keystrings
from keyward.errors import GoogleError, Transient, UsageError
from keyward.google.errors import from_status, status_from_operation
from keyward.google.transport import DEFAULT_TIMEOUT, DiscoveryClient

log = logging.getLogger(__name__)

GEMINI_SERVICE = "generativelanguage.googleapis.com"
PAGE_SIZE = 300
_KEY_ID = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PROJECT = re.compile(r"projects/([^/]+)/")


@dataclass(frozen=True)
class CreatedKey:
    """A key just created, with its key string (shown masked in repr)."""

    name: str
    uid: str
    key_string: str
    etag: str
    create_time: str

    def __repr__(self) -> str:
        return (f"CreatedKey(name={self.name!r}, uid={self.uid!r}, "
                f"key_string={keystrings.mask(self.key_string)!r}, etag={self.etag!r}, "
                f"create_time={self.create_time!r})")

    __str__ = __repr__


def key_name(project: str, key_id: str) -> str:
    """Return the resource name of key `key_id` in `project`."""
    return f"projects/{project}/locations/global/keys/{key_id}"


def project_of(name: str) -> str | None:
    """Return the project (id or number) in a key's resource name."""
    found = _PROJECT.match(name)
    return found.group(1) if found else None


class ApiKeysClient(DiscoveryClient):
    """A small client for API Keys v2; pass `api` (a built Resource) to aim it elsewhere."""

    API = ("apikeys", "v2")

    def __init__(self, credentials: Any = None, api: Any = None, *, retry_budget: float = 120.0,
                 operation_timeout: float = 120.0, poll_interval: float = 1.0,
                 timeout: float = DEFAULT_TIMEOUT, sleep: Callable[[float], None] = time.sleep,
                 on_retry: Callable[[int, float, Transient], None] | None = None):
        super().__init__(credentials, api, retry_budget=retry_budget, timeout=timeout, sleep=sleep,
                         on_retry=on_retry)
        self.operation_timeout = operation_timeout
        self.poll_interval = poll_interval

    def _keys(self) -> Any:
        return self.api.projects().locations().keys()

    # -- creating -------------------------------------------------------------------------

    def start_create(self, project: str, key_id: str, *, display_name: str,
                     service_account: str | None = None,
                     api_targets: Iterable[str] = (GEMINI_SERVICE,),
                     allowed_ips: Iterable[str] = (),
                     annotations: Mapping[str, str] | None = None) -> str:
        """Ask Google to create key `key_id`; return the Operation's name without waiting.

        Raise UsageError for a key id Google would refuse, GoogleError(status=409) when the id is
        taken, or the translated error (PermissionMissing, PolicyBlocked, ...).
        """
        if not _KEY_ID.fullmatch(key_id) or _UUID.fullmatch(key_id):
            raise UsageError(f"key id {key_id!r} is not valid: use 1-63 characters of a-z, 0-9 and "
                             "'-', starting with a letter and not ending with '-'")
        body: dict[str, Any] = {"displayName": display_name}
        restrictions: dict[str, Any] = {}
        targets = [{"service": s} for s in api_targets]
        if targets:
            restrictions["apiTargets"] = targets
        ips = list(allowed_ips)
        if ips:
            restrictions["serverKeyRestrictions"] = {"allowedIps": ips}
        if restrictions:
            body["restrictions"] = restrictions
        if service_account:
            body["serviceAccountEmail"] = service_account
        if annotations:
            body["annotations"] = dict(annotations)
        parent = f"projects/{project}/locations/global"
        op = self._caller.run(lambda: self._keys().create(parent=parent, keyId=key_id, body=body),
                              action="create", project=project)
        name = op.get("name")
        if not isinstance(name, str) or not name:
            raise Transient(f"creating an API key in project {project}: Google's answer named no "
                            "operation — keyward retries", reason="MALFORMED")
        log.info("creating key %s in project %s (operation %s)", key_id, project, name)
        return name

    def wait_operation(self, name: str, *, action: str = "operations",
                       project: str | None = None) -> dict[str, Any]:
        """Poll Operation `name` until done; return its `response` (a dict, maybe empty).

        Raise the translated operation error, or Transient when it is not done within
        `operation_timeout` (waiting again later is safe).
        """
        spent = 0.0
        while True:
            started = time.monotonic()
            op = self._caller.run(lambda: self.api.operations().get(name=name),
                                  action="operations", project=project)
            spent += time.monotonic() - started
            if op.get("done"):
                return self._finish(op, action=action, project=project)
            if spent + self.poll_interval > self.operation_timeout:
                raise Transient(f"waiting for operation {name}"
                                + (f" in project {project}" if project else "")
                                + f": not done after {self.operation_timeout:g} s — waiting "
                                "again later is safe", reason="OPERATION_TIMEOUT")
            self._sleep(self.poll_interval)
            spent += self.poll_interval

    def create_key(self, project: str, key_id: str, *, display_name: str,
                   service_account: str | None = None,
                   api_targets: Iterable[str] = (GEMINI_SERVICE,),
                   allowed_ips: Iterable[str] = (),
                   annotations: Mapping[str, str] | None = None) -> CreatedKey:
        """Create key `key_id` in `project`, wait for it, and return it with its key string.

        A create that finds the id taken by a live key (a retried call that had succeeded)
        returns that key; a deleted key holding the id raises GoogleError(status=409).
        """
        try:
            op_name = self.start_create(project, key_id, display_name=display_name,
                                        service_account=service_account, api_targets=api_targets,
                                        allowed_ips=allowed_ips, annotations=annotations)
            key = self.wait_operation(op_name, action="create", project=project)
        except GoogleError as exc:
            # ALREADY_EXISTS comes in the call or only in the finished operation.
            existing = self.await_key(project, key_id) if exc.status == 409 else None
            if not existing or existing.get("deleteTime"):
                raise
            log.info("key %s already exists in project %s; using it", key_id, project)
            key = existing
        name = str(key.get("name") or key_name(project, key_id))
        key_string = key.get("keyString") or self.get_key_string(name)
        return CreatedKey(name=name, uid=str(key.get("uid") or ""), key_string=key_string,
                          etag=str(key.get("etag") or ""),
                          create_time=str(key.get("createTime") or ""))

    # -- reading --------------------------------------------------------------------------

    def get_key(self, name: str) -> dict[str, Any] | None:
        """Return key `name` (deleted keys included, with `deleteTime`), or None if absent."""
        try:
            return self._caller.run(lambda: self._keys().get(name=name), action="get",
                                    project=project_of(name))
        except GoogleError as exc:
            if exc.status == 404:
                return None
            raise

    def find_key(self, project: str, key_id: str) -> dict[str, Any] | None:
        """Return the key with id `key_id` in `project`, or None if there is none."""
        return self.get_key(key_name(project, key_id))

    def await_key(self, project: str, key_id: str, timeout: float | None = None) -> dict[str, Any] | None:
        """Return key `key_id` once Google shows it, or None if it is still absent after
        `timeout` seconds (default: operation_timeout).

        Used after ALREADY_EXISTS: the id is taken, but the key reads as 404 until the create
        operation that took it is done, so absence right now proves nothing.
        """
        limit = self.operation_timeout if timeout is None else timeout
        spent = 0.0
        while True:
            started = time.monotonic()
            found = self.find_key(project, key_id)
            spent += time.monotonic() - started
            if found is not None or spent + self.poll_interval > limit:
                return found
            self._sleep(self.poll_interval)
            spent += self.poll_interval

    def get_key_string(self, name: str) -> str:
        """Return the key string of key `name`. Never log it."""
        project = project_of(name)
        answer = self._caller.run(lambda: self._keys().getKeyString(name=name),
                                  action="getKeyString", project=project)
        key_string = answer.get("keyString")
        if not isinstance(key_string, str) or not key_string:
            raise Transient(f"reading an API key's key string in project {project}: Google's "
                            "answer held none — keyward retries", reason="MALFORMED")
        return key_string

    def list_keys(self, project: str, show_deleted: bool = False) -> list[dict[str, Any]]:
        """Return every key of `project` (all pages); deleted ones only with `show_deleted`."""
        parent = f"projects/{project}/locations/global"
        kwargs: dict[str, Any] = {"parent": parent, "pageSize": PAGE_SIZE}
        if show_deleted:
            kwargs["showDeleted"] = True
        return list(self._pages(self._keys().list, kwargs, "keys", action="list", project=project,
                                what="listing API keys"))

    def lookup_key(self, key_string: str) -> dict[str, str]:
        """Return `{"name", "parent"}` of the key holding `key_string`."""
        answer = self._caller.run(lambda: self.api.keys().lookupKey(keyString=key_string),
                                  action="lookup", project=None)
        return {"name": str(answer.get("name") or ""), "parent": str(answer.get("parent") or "")}

    # -- deleting -------------------------------------------------------------------------

    def delete_key(self, name: str, etag: str | None = None, *, attempts: int = 5) -> None:
        """Delete key `name` and wait until Google is done. A key already gone counts as done.

        An etag that no longer matches (Google touches a key right after creating it; a console
        edit changes it too) is not an answer: the key is read again and the delete retried with
        its current etag, up to `attempts` times.
        """
        project = project_of(name)
        for attempt in range(1, attempts + 1):
            kwargs: dict[str, Any] = {"name": name}
            if etag:
                kwargs["etag"] = etag
            try:
                op = self._caller.run(lambda: self._keys().delete(**kwargs), action="delete",
                                      project=project)
                self._finish(op, action="delete", project=project)
            except GoogleError as exc:
                if exc.status == 404:
                    log.info("key %s was already gone", name)
                    return
                if exc.status not in (400, 409, 412):
                    raise
                key = self.get_key(name)
                if key is None or key.get("deleteTime"):
                    log.info("key %s was already deleted", name)
                    return
                fresh = str(key.get("etag") or "") or None
                if attempt == attempts or fresh == etag:
                    raise
                log.info("key %s changed since it was read (etag); deleting with the current one", name)
                etag = fresh
                continue
            log.info("deleted key %s", name)
            return

    def undelete_key(self, name: str) -> dict[str, Any]:
        """Restore a key deleted less than 30 days ago; return the key."""
        project = project_of(name)
        op = self._caller.run(lambda: self._keys().undelete(name=name, body={}),
                              action="undelete", project=project)
        return self._finish(op, action="undelete", project=project)

    def _finish(self, op: dict[str, Any], *, action: str, project: str | None) -> dict[str, Any]:
        """Return the response of Operation `op`, waiting for it unless it came back done."""
        if not op.get("done"):
            return self.wait_operation(str(op.get("name") or ""), action=action, project=project)
        error = op.get("error")
        if isinstance(error, dict) and error:
            raise from_status(status_from_operation(error), action=action, project=project)
        response = op.get("response")
        if not isinstance(response, dict):
            return {}
        return {k: v for k, v in response.items() if k != "@type"}
