"""Queries on the rotation journal and the keys a rotation touches.

Step changes are compare-and-set: `advance` updates a row only while it is still at one of the
expected steps and unfinished, and says whether it did, so two runners (a daemon and a command, or
two hosts sharing PostgreSQL) can never both take the same step.
"""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from keyward.storage.models import ACTIVE, INVALID, PREVIOUS, Key, Project, Rotation


def lock_project(s: Session, project_pk: int) -> Project:
    """Return the project, locked for this transaction (FOR UPDATE on PostgreSQL; SQLite's
    BEGIN IMMEDIATE already serialises writers), so deciding to start a rotation is atomic."""
    return s.scalars(select(Project).where(Project.id == project_pk).with_for_update()).one()


def open_rotation(s: Session, project_pk: int) -> Rotation | None:
    """Return the project's unfinished rotation, oldest first, or None."""
    return s.scalars(
        select(Rotation)
        .where(Rotation.project_pk == project_pk, Rotation.finished_at.is_(None))
        .order_by(Rotation.id)
        .limit(1)
    ).first()


def open_rotations(s: Session) -> Sequence[Rotation]:
    return s.scalars(select(Rotation).where(Rotation.finished_at.is_(None)).order_by(Rotation.id)).all()


def get_rotation(s: Session, rotation_pk: int) -> Rotation:
    return s.scalars(select(Rotation).where(Rotation.id == rotation_pk)).one()


def rotation_for_key(s: Session, key_id: str) -> Rotation | None:
    return s.scalars(select(Rotation).where(Rotation.new_key_id == key_id)).first()


def reported_invalid_waiting(s: Session) -> Sequence[Key]:
    """Return invalid keys not yet replaced, of managed projects with no active key and no open
    rotation, each its project's latest key."""
    open_projects = select(Rotation.project_pk).where(Rotation.finished_at.is_(None))
    active_projects = select(Key.project_pk).where(Key.state == ACTIVE)
    rows = s.scalars(
        select(Key).join(Project, Project.id == Key.project_pk)
        .where(Key.state == INVALID, Key.replaced_by.is_(None), Project.managed.is_(True),
               Key.project_pk.not_in(open_projects), Key.project_pk.not_in(active_projects))
    ).all()
    return [k for k in rows if latest_key(s, k.project_pk) is k]


def last_rotation_start(s: Session, project_pk: int, reason: str) -> datetime | None:
    """Return when the project's latest rotation for `reason` started, or None."""
    return s.scalars(select(Rotation.started_at).where(Rotation.project_pk == project_pk,
                                                       Rotation.reason == reason)
                     .order_by(Rotation.started_at.desc()).limit(1)).first()


def rotation_key_ids(s: Session, project_pk: int) -> set[str]:
    """Return every key id this database's rotations of the project asked Google for."""
    return set(s.scalars(select(Rotation.new_key_id).where(Rotation.project_pk == project_pk)).all())


def open_key_ids(s: Session) -> set[str]:
    """Return the key ids of rotations still in flight (their keys may exist at Google already)."""
    return set(s.scalars(select(Rotation.new_key_id).where(Rotation.finished_at.is_(None))).all())


def add_rotation(s: Session, project_pk: int, *, new_key_id: str, old_key_id: str | None,
                 reason: str, step: str, now: datetime) -> Rotation:
    row = Rotation(project_pk=project_pk, step=step, new_key_id=new_key_id, old_key_id=old_key_id,
                   reason=reason, started_at=now, updated_at=now)
    s.add(row)
    s.flush()
    return row


def advance(s: Session, rotation_pk: int, expected: Sequence[str], step: str, *, now: datetime,
            finished: bool = False, **fields) -> bool:
    """Move the row to `step` if it is still at one of `expected` and open; return whether it moved."""
    values = dict(fields, step=step, updated_at=now)
    if finished:
        values["finished_at"] = now
    result = s.execute(
        update(Rotation)
        .where(Rotation.id == rotation_pk, Rotation.step.in_(list(expected)),
               Rotation.finished_at.is_(None))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def set_rotation_error(s: Session, rotation_pk: int, error: str, now: datetime) -> None:
    s.execute(update(Rotation).where(Rotation.id == rotation_pk)
              .values(error=error, updated_at=now).execution_options(synchronize_session=False))


def active_key(s: Session, project_pk: int) -> Key | None:
    """Return the project's newest active key, or None."""
    return s.scalars(
        select(Key).where(Key.project_pk == project_pk, Key.state == ACTIVE)
        .order_by(Key.promoted_at.desc(), Key.id.desc()).limit(1)
    ).first()


def active_keys(s: Session, project_pk: int) -> Sequence[Key]:
    return s.scalars(select(Key).where(Key.project_pk == project_pk, Key.state == ACTIVE)).all()


def latest_key(s: Session, project_pk: int) -> Key | None:
    return s.scalars(select(Key).where(Key.project_pk == project_pk)
                     .order_by(Key.created_at.desc(), Key.id.desc()).limit(1)).first()


def invalid_keys(s: Session, project_pk: int) -> Sequence[Key]:
    return s.scalars(select(Key).where(Key.project_pk == project_pk, Key.state == INVALID)).all()


def previous_keys_due(s: Session, now: datetime) -> Sequence[Key]:
    """Return keys whose grace period is over, with their projects loaded."""
    return s.scalars(
        select(Key).options(selectinload(Key.project))
        .where(Key.state == PREVIOUS, Key.grace_until.is_not(None), Key.grace_until <= now)
        .order_by(Key.grace_until, Key.id)
    ).all()


def keys_by_google_name(s: Session, project_pk: int) -> dict[str, Key]:
    rows = s.scalars(select(Key).where(Key.project_pk == project_pk, Key.google_name.is_not(None))).all()
    return {k.google_name: k for k in rows if k.google_name}


def keys_by_id(s: Session, project_pk: int) -> dict[str, Key]:
    return {k.key_id: k for k in s.scalars(select(Key).where(Key.project_pk == project_pk)).all()}
