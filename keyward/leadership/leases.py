"""Lease rows with fencing epochs: taking, renewing and releasing them, and proving a write still
holds one (a `Fence`). The database's clock decides expiry on PostgreSQL, so hosts' clocks need not
agree; on SQLite (one host) this host's clock does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from keyward.errors import LeaseLost
from keyward.storage.models import Lease

if TYPE_CHECKING:
    from keyward.context import Context
    from keyward.storage.store import Store

LEADER, ROTATOR = "leader", "rotator"
DEFAULT_TTL = timedelta(seconds=7)

_local = threading.local()


def db_now(s: Session) -> datetime:
    """Return the database's clock on PostgreSQL (one clock for all hosts), else this host's."""
    if s.get_bind().dialect.name == "postgresql":
        value = s.execute(select(func.clock_timestamp())).scalar_one()
        return value.astimezone(timezone.utc)
    return datetime.now(timezone.utc)


def try_acquire(s: Session, name: str, holder: str, ttl: timedelta) -> int | None:
    """Take or renew lease `name` for `holder` if it is free, expired or already ours; return its
    epoch, or None when someone else holds it. The row is locked for the transaction."""
    now = db_now(s)
    row = s.scalars(select(Lease).where(Lease.name == name).with_for_update()).first()
    if row is None:
        try:
            with s.begin_nested():
                s.add(Lease(name=name, holder=holder, epoch=1, expires_at=now + ttl))
            return 1
        except IntegrityError:  # another process created it at the same moment
            row = s.scalars(select(Lease).where(Lease.name == name).with_for_update()).one()
    if row.holder != holder and row.expires_at > now:
        return None
    if row.holder != holder:
        row.holder, row.epoch = holder, row.epoch + 1
    row.expires_at = now + ttl
    return row.epoch


def release(s: Session, name: str, holder: str) -> None:
    """Give lease `name` up if `holder` holds it (the epoch stays, so fences stay meaningful)."""
    now = db_now(s)
    s.execute(update(Lease).where(Lease.name == name, Lease.holder == holder)
              .values(expires_at=now - timedelta(seconds=1))
              .execution_options(synchronize_session=False))


def read_lease(s: Session, name: str) -> Lease | None:
    return s.get(Lease, name)


@dataclass(frozen=True)
class Fence:
    """A lease this process holds with a given epoch; `check` proves it inside a transaction."""

    name: str
    holder: str
    epoch: int
    ttl: timedelta

    def check(self, s: Session) -> None:
        """Extend the lease if still ours with our epoch and unexpired; raise LeaseLost if not."""
        now = db_now(s)
        result = s.execute(
            update(Lease)
            .where(Lease.name == self.name, Lease.holder == self.holder, Lease.epoch == self.epoch,
                   Lease.expires_at > now)
            .values(expires_at=now + self.ttl)
            .execution_options(synchronize_session=False))
        if result.rowcount != 1:
            raise LeaseLost(f"this process no longer holds the {self.name} lease (epoch "
                            f"{self.epoch}); another process took over, so this write was refused")


# Fences in force: the daemon's leader fence for the whole store, the rotator fence per thread.

def set_leader_fence(store: "Store", fence: Fence | None) -> None:
    store.keyward_leader_fence = fence  # type: ignore[attr-defined]


def fences(ctx: "Context") -> list[Fence]:
    """Return the fences every rotation write of this thread must pass."""
    found = [f for f in (getattr(ctx.store, "keyward_leader_fence", None),
                         getattr(_local, "rotator", None)) if f is not None]
    return found


def check_fences(ctx: "Context", s: Session) -> None:
    for fence in fences(ctx):
        fence.check(s)


@contextmanager
def fenced_write(ctx: "Context") -> Iterator[Session]:
    """A write transaction that first proves this process still holds its leases."""
    with ctx.store.write() as s:
        check_fences(ctx, s)
        yield s


def verify_fences(ctx: "Context") -> None:
    """Check the fences in a transaction of their own (before an irreversible Google call)."""
    if fences(ctx):
        with ctx.store.write() as s:
            check_fences(ctx, s)
