"""Queries over stored key strings as a whole: counting them by master key, and resealing them.

Resealing (`keyward db rekey`, `keyward db encrypt`, and revision 0003_sealed_secrets) runs in the
caller's one transaction on a plain Connection, so the Alembic revision can use it as it is. It is
idempotent: a row already sealed with the target master key is left alone, so a failed run is
simply run again. Every row is authenticated before it is rewritten: a tampered value stops the
whole transaction, and nothing is rewritten under a key that could not open it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import func, select, text, update
from sqlalchemy.engine import Connection

from keyward.sealing import MasterKey, Sealer, sealed_by
from keyward.storage.models import Event, Key, secret_aad

PLAIN = "plain"


@dataclass
class Resealed:
    """What a reseal changed: rows moved per former master key id ("plain" for plain text)."""

    master_id: str
    moved: dict[str, int] = field(default_factory=dict)
    unchanged: int = 0

    @property
    def total(self) -> int:
        return sum(self.moved.values())

    def describe(self) -> str:
        if not self.moved:
            return f"every secret was already sealed with master key {self.master_id} ({self.unchanged})"
        parts = ", ".join(f"{n} from {'plain text' if src == PLAIN else 'master key ' + src}"
                          for src, n in sorted(self.moved.items()))
        return f"sealed {self.total} secret(s) with master key {self.master_id} ({parts}); {self.unchanged} already were"


def secret_counts(conn: Connection) -> dict[str, int]:
    """Return how many stored secrets each master key id seals ("plain" for plain text)."""
    rows = conn.execute(
        select(Key.sealed_by, func.count()).where(Key.sealed.is_not(None)).group_by(Key.sealed_by)
    ).all()
    return {(by or PLAIN): n for by, n in rows}


def reseal_all(conn: Connection, sealer: Sealer, master: MasterKey, *, only_plain: bool = False,
               kind: str = "db.rekey", now: datetime | None = None) -> Resealed:
    """Seal every stored secret with `master` (only plain ones when `only_plain`); journal the change.

    Raise MasterKeyError when a row is sealed with a master key the sealer cannot find, and
    SecretTampered when a row does not authenticate; the caller's transaction then rolls back whole.
    """
    result = Resealed(master.id)
    rows = conn.execute(
        select(Key.id, Key.key_id, Key.project_pk, Key.sealed, Key.sealed_by)
        .where(Key.sealed.is_not(None))
        .order_by(Key.id)
        .with_for_update()  # PostgreSQL: a rotation writing a key waits for us (SQLite: BEGIN IMMEDIATE)
    ).all()
    for pk, key_id, project_pk, value, by in rows:
        if by == master.id or (only_plain and by is not None):
            result.unchanged += 1
            continue
        new = sealer.reseal(value, secret_aad(key_id, project_pk), f"key {key_id}", master=master)
        conn.execute(update(Key).where(Key.id == pk, Key.sealed == value)
                     .values(sealed=new, sealed_by=sealed_by(new)))
        result.moved[by or PLAIN] = result.moved.get(by or PLAIN, 0) + 1
    if result.moved:
        conn.execute(Event.__table__.insert().values(
            at=now or datetime.now(timezone.utc), kind=kind, level="info", message=result.describe()))
    return result


def mark_sealed_by(conn: Connection) -> None:
    """Fill `sealed_by` from the values themselves (used once, by the revision that adds it)."""
    rows = conn.execute(text("SELECT id, secret FROM keys WHERE secret LIKE 'kw1:%'")).all()
    for pk, value in rows:
        conn.execute(text("UPDATE keys SET sealed_by = :by WHERE id = :id"), {"by": sealed_by(value), "id": pk})
