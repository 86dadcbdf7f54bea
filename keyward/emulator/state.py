"""Everything the emulator remembers, behind one lock.

Projects (with their limits, denied permissions, disabled services and org policy), API keys,
long-running operations, the Gemini calls served (the source of Monitoring's time series and of
quota enforcement) and pending faults. Service modules read and change this only while holding
`State.lock`; nothing here does I/O.
"""

from __future__ import annotations

import secrets
import string
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keyward.emulator.clock import Clock, rfc3339

# Free-tier figures in the spirit of the published table; tests pass their own.
DEFAULT_LIMITS: dict[str, dict[str, int]] = {
    "gemini-2.5-pro": {"rpm": 5, "tpm": 250_000, "rpd": 100},
    "gemini-2.5-flash": {"rpm": 10, "tpm": 250_000, "rpd": 250},
    "gemini-2.5-flash-lite": {"rpm": 15, "tpm": 250_000, "rpd": 1000},
    "gemini-2.0-flash": {"rpm": 15, "tpm": 1_000_000, "rpd": 200},
}

_KEY_ALPHABET = string.ascii_letters + string.digits + "-_"


@dataclass
class Project:
    """A Google Cloud project as far as the emulator cares."""

    project_id: str
    number: str
    limits: dict[str, dict[str, int]]
    denied: set[str] = field(default_factory=set)
    disabled: set[str] = field(default_factory=set)
    sa_keys_blocked: bool = False


@dataclass
class Key:
    """An API key; `key_string` is the secret and leaves only through create and getKeyString."""

    project_number: str
    key_id: str
    key_string: str
    uid: str
    display_name: str = ""
    create_time: float = 0.0
    update_time: float = 0.0
    delete_time: float | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    restrictions: dict[str, Any] = field(default_factory=dict)
    service_account_email: str = ""
    etag: str = ""
    # The create operation that makes this key; until it is done the key reads as 404 (as at Google).
    creating: str | None = None

    @property
    def name(self) -> str:
        return f"projects/{self.project_number}/locations/global/keys/{self.key_id}"

    @property
    def kind(self) -> str:
        return "auth" if self.key_string.startswith("AQ.") else "standard"

    def touch(self, now: float) -> None:
        """Record a change: new updateTime and a new etag."""
        self.update_time = now
        self.etag = f'W/"{secrets.token_urlsafe(18)}"'

    def resource(self, with_string: bool = False) -> dict[str, Any]:
        """Return the Key resource as the API Keys API shows it."""
        out: dict[str, Any] = {
            "name": self.name,
            "uid": self.uid,
            "displayName": self.display_name,
            "createTime": rfc3339(self.create_time),
            "updateTime": rfc3339(self.update_time),
            "etag": self.etag,
        }
        if self.delete_time is not None:
            out["deleteTime"] = rfc3339(self.delete_time)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.restrictions:
            out["restrictions"] = self.restrictions
        if self.service_account_email:
            out["serviceAccountEmail"] = self.service_account_email
        if with_string:
            out["keyString"] = self.key_string
        # Key strings never appear in repr(): this dict is a response body, not a log line.
        return out

    def __repr__(self) -> str:
        return f"Key(name={self.name!r}, kind={self.kind!r}, deleted={self.delete_time is not None})"


@dataclass
class Operation:
    """A long-running operation; it is done after `polls_left` more reads or once the clock
    reaches `ready_at`, whichever comes first (Google finishes its work whether polled or not)."""

    name: str
    project_number: str
    polls_left: int
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    ready_at: float = 0.0
    key_name: str | None = None  # the key a create operation makes visible when done


@dataclass
class Call:
    """One Gemini request the emulator answered, as Monitoring and quota accounting see it."""

    at: float
    project_number: str
    model: str
    method: str
    version: str
    credential_uid: str
    code: int
    input_tokens: int
    counted: bool  # accepted and charged against the project's quota


def new_key_string(kind: str) -> str:
    """Return a fresh random key string of `kind` (`auth` → `AQ.`…, `standard` → `AIza`…)."""
    if kind == "auth":
        return "AQ." + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(50))
    return "AIza" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(35))


class State:
    """All emulator state; hold `lock` while reading or changing any attribute."""

    def __init__(self, clock: Callable[[], float] | None = None):
        self.lock = threading.RLock()
        self.clock = Clock(clock)
        self.reset()

    def reset(self) -> None:
        """Forget everything except the clock; settings return to their defaults."""
        with self.lock:
            self.projects: dict[str, Project] = {}
            self.keys: dict[str, Key] = {}
            self.key_names_by_string: dict[str, str] = {}
            self.operations: dict[str, Operation] = {}
            self.calls: list[Call] = []
            self.faults: list[Any] = []
            self.operation_polls = 1
            # Seconds after which an operation is done even if nobody polls it.
            self.operation_seconds = 2.0
            # Where a create with a taken key id is refused: "operation" (answer 200, the finished
            # operation carries ALREADY_EXISTS, as Google may do) or "call" (409 at once).
            self.already_exists_in = "operation"
            self.reject_standard_keys = True
            self.monitoring_lag_seconds = 0.0
            # Metrics scopes: scoping project number → {monitored project number: when added}.
            self.metrics_scopes: dict[str, dict[str, float]] = {}
            # Cloud Monitoring's read quota, charged to the caller's quota project (None: off),
            # and the reads each quota project made, for a rolling 60-second window.
            self.monitoring_reads_per_minute: int | None = None
            self.monitoring_reads: dict[str, list[float]] = {}
            # The most time series one timeSeries.list page holds (Google's cap is 100,000;
            # smaller makes paging happen in tests).
            self.monitoring_page_size = 100_000

    def now(self) -> float:
        return self.clock.now()

    def add_project(self, project_id: str, number: str,
                    limits: dict[str, dict[str, int]] | None = None) -> Project:
        """Create or replace a project; `limits` default to DEFAULT_LIMITS."""
        if not project_id or not str(number).isdigit():
            raise ValueError("a project needs an id and a numeric project number")
        with self.lock:
            chosen = limits if limits is not None else DEFAULT_LIMITS
            project = Project(project_id, str(number),
                              {m: {k: int(v) for k, v in lim.items()} for m, lim in chosen.items()})
            self.projects[project_id] = project
            return project

    def find_project(self, ref: str) -> Project | None:
        """Return the project whose id or number is `ref`, or None."""
        with self.lock:
            if ref in self.projects:
                return self.projects[ref]
            for project in self.projects.values():
                if project.number == ref:
                    return project
            return None

    def add_key(self, project: Project, key_id: str | None, *, display_name: str = "",
                service_account_email: str = "", restrictions: dict[str, Any] | None = None,
                annotations: dict[str, str] | None = None, kind: str | None = None) -> Key:
        """Create a key in `project` (ids are assumed valid and free); return it."""
        with self.lock:
            now = self.now()
            if kind is None:
                kind = "auth" if service_account_email else "standard"
            key = Key(project_number=project.number,
                      key_id=key_id or str(uuid.uuid4()),
                      key_string=new_key_string(kind), uid=str(uuid.uuid4()),
                      display_name=display_name, create_time=now,
                      annotations=dict(annotations or {}), restrictions=dict(restrictions or {}),
                      service_account_email=service_account_email)
            key.touch(now)
            self.keys[key.name] = key
            self.key_names_by_string[key.key_string] = key.name
            return key

    def key_by_string(self, key_string: str) -> Key | None:
        """Return the key (deleted or not) whose secret is `key_string`, or None."""
        with self.lock:
            name = self.key_names_by_string.get(key_string)
            return self.keys.get(name) if name else None

    def new_operation(self, project: Project, response: dict[str, Any] | None = None, *,
                      error: dict[str, Any] | None = None, key: Key | None = None) -> Operation:
        """Register an operation that finishes with `response` (or `error`) after the configured
        polls or seconds; with `key`, that key stays invisible until the operation is done."""
        with self.lock:
            name = f"operations/akmf.p7-{project.number}-{uuid.uuid4()}"
            op = Operation(name, project.number, self.operation_polls, response=response,
                           error=error, ready_at=self.now() + self.operation_seconds)
            if key is not None and (op.polls_left > 0 and self.operation_seconds > 0):
                op.key_name, key.creating = key.name, name
            self.operations[name] = op
            return op

    def operation_done(self, op: Operation) -> bool:
        """Return whether `op` is finished now (and make its key visible when it is)."""
        with self.lock:
            done = op.polls_left <= 0 or self.now() >= op.ready_at
            if done and op.key_name:
                key = self.keys.get(op.key_name)
                if key is not None and key.creating == op.name:
                    key.creating = None
                op.key_name = None
            return done

    def visible_key(self, name: str) -> Key | None:
        """Return key `name` as reads see it: None while its create operation is running."""
        with self.lock:
            key = self.keys.get(name)
            if key is None:
                return None
            if key.creating is not None:
                op = self.operations.get(key.creating)
                if op is not None and not self.operation_done(op):
                    return None
                key.creating = None
            return key
