"""What a rotation reports and what one step reads: plain data, detached from the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from keyward.errors import RotationError
from keyward.storage import rotation_queries as rq
from keyward.storage import store as q
from keyward.storage.models import Project

if TYPE_CHECKING:
    from keyward.context import Context

MANAGED_ANNOTATION = "keyward.io/managed"
KEY_ID_ANNOTATION = "keyward.io/key-id"
# Which keyward database created the key: two installations on one Google project (a laptop and a
# server) must never take each other's keys for strays.
INSTALLATION_ANNOTATION = "keyward.io/installation"
INSTALLATION_META = "installation_id"


def installation_id(ctx: "Context") -> str:
    """Return this database's installation id, drawing and storing it on first use (race-safe:
    concurrent first uses on PostgreSQL agree on the row that was inserted first)."""
    import secrets

    from sqlalchemy.exc import IntegrityError

    from keyward.storage.models import Meta

    with ctx.store.read() as s:
        row = q.get_meta(s, INSTALLATION_META)
        if row is not None:
            return row.value
    with ctx.store.write() as s:
        row = q.get_meta(s, INSTALLATION_META)
        if row is not None:
            return row.value
        value = f"kw-{secrets.token_hex(8)}"
        try:
            with s.begin_nested():
                s.add(Meta(name=INSTALLATION_META, value=value, updated_at=ctx.now()))
        except IntegrityError:
            return q.get_meta(s, INSTALLATION_META).value
        return value


@dataclass(frozen=True)
class RotationResult:
    """What happened to one project: `status` is rotated | pending | failed | not-due | backoff |
    skipped | would-rotate; `ok` is False only for pending and failed."""

    project_id: str
    status: str
    message: str
    reason: str | None = None
    new_key_id: str | None = None
    old_key_id: str | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.status not in ("pending", "failed")


@dataclass(frozen=True)
class Snapshot:
    """A rotation row with the project and key facts its next step needs (plain data)."""

    rotation_pk: int
    project_pk: int
    project_id: str
    pool: str
    service_account: str | None
    allowed_ips: tuple[str, ...]
    min_age: timedelta
    max_age: timedelta
    step: str
    reason: str
    new_key_id: str
    old_key_id: str | None
    operation: str | None
    outcome: str | None
    error: str | None
    secret: str | None
    google_name: str | None
    etag: str | None


def load_snapshot(ctx: "Context", rotation_pk: int) -> Snapshot:
    """Return the rotation row with the project and new-key facts its next step needs."""
    cfg = ctx.config.rotation
    with ctx.store.read() as s:
        row = rq.get_rotation(s, rotation_pk)
        row_project = s.get(Project, row.project_pk)
        if row_project is None:
            raise RotationError(f"rotation {rotation_pk} belongs to a project that was removed")
        key = q.find_key(s, row.new_key_id)
        return Snapshot(
            rotation_pk=row.id, project_pk=row.project_pk, project_id=row_project.project_id,
            pool=row_project.pool.name, service_account=row_project.service_account,
            allowed_ips=tuple(filter(None, row_project.allowed_ips.split(","))),
            min_age=_age(row_project.min_age_s, cfg.min_age),
            max_age=_age(row_project.max_age_s, cfg.max_age),
            step=row.step, reason=row.reason, new_key_id=row.new_key_id,
            old_key_id=row.old_key_id, operation=row.operation,
            outcome=row.outcome if row.finished_at is not None else None, error=row.error,
            secret=key.secret if key else None, google_name=key.google_name if key else None,
            etag=key.etag if key else None,
        )


def _age(seconds: int | None, default: timedelta) -> timedelta:
    return default if seconds is None else timedelta(seconds=seconds)


def utc(value: datetime) -> str:
    """Format an instant for messages (keyward stores and shows UTC)."""
    return f"{value:%Y-%m-%d %H:%M} UTC"
