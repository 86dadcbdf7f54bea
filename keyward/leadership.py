"""Exactly one rotator: leases with fencing epochs in the shared database.

Two leases live in the `leases` table. `leader` is held by one daemon among all that share the
database (one host or several sharing PostgreSQL): only the leader rotates, polls Cloud Monitoring,
refreshes limits and re-checks invalid keys; every daemon accepts reports, selects, publishes and
answers status. `rotator` is held for the length of one rotation run, by the leader's rotation job
or by `keyward rotate`, so a command and a daemon never rotate at once.

A lease row is taken with a compare-and-set (holder is me, or the lease has expired) inside a
transaction that locks the row, and its epoch grows whenever the holder changes. Every rotation
write checks, in its own transaction, that this process still holds each lease it was fenced by
with the same epoch and an expiry in the future, and extends it; a leader that lost its lease
(paused, partitioned, its connection killed) finds its write refused with LeaseLost and never
promotes, retires or deletes. The database's clock decides expiry on PostgreSQL, so hosts' clocks
need not agree.

A lease row rather than a session-bound advisory lock: advisory locks break under transaction
pooling (PgBouncer) and give no epoch to fence writes with, and the same code serves SQLite.

A holder is one process instance (an id drawn at start), not a host name: containers and cloned
machines share host names. Each instance describes itself in a `meta` row `instance.<id>`
(host, pid, version, kind, heartbeat), which status shows and error messages quote.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import keyward
from keyward.errors import AlreadyRunning, KeywardError, LeaseLost
from keyward.storage.models import Lease, Meta

if TYPE_CHECKING:
    from keyward.context import Context
    from keyward.storage.store import Store

log = logging.getLogger(__name__)

LEADER, ROTATOR = "leader", "rotator"
INSTANCE_PREFIX = "instance."
DEFAULT_TTL = timedelta(seconds=7)
# Instance rows of processes gone for this long are removed by the leader.
FORGET_AFTER = timedelta(days=1)

_local = threading.local()


def new_instance_id() -> str:
    """Return a fresh id for one process: unique even where host names repeat."""
    return secrets.token_hex(6)


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


# Instances ------------------------------------------------------------------------------------


def describe(instance_id: str, kind: str, started_at: datetime, *, stopped: bool = False,
             role: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(timezone.utc)
    return {"id": instance_id, "kind": kind, "host": socket.gethostname(), "pid": os.getpid(),
            "version": keyward.__version__, "started_at": started_at.isoformat(),
            "beat_at": now.isoformat(), "role": role,
            "stopped_at": now.isoformat() if stopped else None}


def write_instance(s: Session, info: dict[str, Any], now: datetime) -> None:
    name = INSTANCE_PREFIX + info["id"]
    row = s.get(Meta, name)
    value = json.dumps(info, sort_keys=True)
    if row is None:
        try:
            with s.begin_nested():
                s.add(Meta(name=name, value=value, updated_at=now))
            return
        except IntegrityError:
            row = s.get(Meta, name)
    row.value, row.updated_at = value, now


def instances(s: Session) -> list[dict[str, Any]]:
    """Return every instance row (daemons and commands), newest heartbeat first."""
    rows = s.scalars(select(Meta).where(Meta.name.like(INSTANCE_PREFIX + "%"))).all()
    out = []
    for row in rows:
        try:
            info = json.loads(row.value)
        except ValueError:
            continue
        if isinstance(info, dict):
            info["updated_at"] = row.updated_at
            out.append(info)
    return sorted(out, key=lambda i: i["updated_at"], reverse=True)


def holder_instance(holder: str) -> str:
    """Return the instance id inside a lease holder (`<instance>` or `<instance>:<run>`)."""
    return holder.split(":", 1)[0]


def describe_holder(s: Session, holder: str) -> str:
    """Return 'keyward daemon 1a2b… on host H (pid N)' for a lease holder, as far as known."""
    wanted = holder_instance(holder)
    for info in instances(s):
        if info.get("id") == wanted:
            what = "keyward daemon" if info.get("kind") == "daemon" else "`keyward rotate`"
            return f"{what} {wanted} on host {info.get('host')} (pid {info.get('pid')})"
    return f"instance {wanted}"


def forget_old(s: Session, now: datetime) -> None:
    cutoff = now - FORGET_AFTER
    s.execute(delete(Meta).where(Meta.name.like(INSTANCE_PREFIX + "%"), Meta.updated_at < cutoff)
              .execution_options(synchronize_session=False))


# One rotation run at a time -------------------------------------------------------------------


@contextmanager
def rotating(ctx: "Context", *, wait: float, kind: str = "command",
             instance_id: str | None = None, ttl: timedelta | None = None) -> Iterator[Fence]:
    """Hold the rotator lease for the body; wait up to `wait` seconds for it.

    Raise AlreadyRunning naming the holder (daemon or command, host and pid) when it stays taken.
    A thread renews the lease while the body runs; the body's rotation writes are fenced by it.
    """
    ttl = ttl or lease_ttl(ctx)
    instance_id = instance_id or new_instance_id()
    holder = f"{instance_id}:{secrets.token_hex(3)}"
    started = datetime.now(timezone.utc)
    deadline = time.monotonic() + max(0.0, wait)
    while True:
        with ctx.store.write() as s:
            if kind != "daemon":
                write_instance(s, describe(instance_id, kind, started), db_now(s))
            epoch = try_acquire(s, ROTATOR, holder, ttl)
            if epoch is None and _holder_dead_here(s, ROTATOR):
                epoch = try_acquire(s, ROTATOR, holder, ttl)
            who = None
            if epoch is None:
                lease = read_lease(s, ROTATOR)
                who = describe_holder(s, lease.holder) if lease else "another process"
        if epoch is not None:
            break
        if time.monotonic() >= deadline:
            raise AlreadyRunning(f"a rotation is already running in this database, by {who}"
                                 + (f"; waited {wait:g} s" if wait > 0 else "")
                                 + ". Try again when it is done.")
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    fence = Fence(ROTATOR, holder, epoch, ttl)
    stop = threading.Event()
    renewer = threading.Thread(target=_renew_rotator, args=(ctx, fence, stop),
                               name="keyward-rotator-lease", daemon=True)
    previous = getattr(_local, "rotator", None)
    _local.rotator = fence
    renewer.start()
    try:
        yield fence
    finally:
        _local.rotator = previous
        stop.set()
        renewer.join(timeout=5)
        try:
            with ctx.store.write() as s:
                release(s, ROTATOR, holder)
                if kind != "daemon":
                    write_instance(s, describe(instance_id, kind, started, stopped=True), db_now(s))
        except KeywardError as exc:
            log.warning("could not release the rotator lease (it expires on its own): %s", exc)


def _holder_dead_here(s: Session, name: str) -> bool:
    """On SQLite (one host), free lease `name` when its holder was a process of this host that is
    gone (SIGKILLed mid-rotation); return whether it was freed. Never on PostgreSQL, where pids
    say nothing across containers sharing a host name."""
    if s.get_bind().dialect.name != "sqlite":
        return False
    lease = read_lease(s, name)
    if lease is None:
        return False
    wanted = holder_instance(lease.holder)
    info = next((i for i in instances(s) if i.get("id") == wanted), None)
    if info is None or info.get("host") != socket.gethostname() or _pid_alive(info.get("pid")):
        return False
    release(s, name, lease.holder)
    log.info("freed the %s lease of keyward instance %s (pid %s is gone)", name, wanted, info.get("pid"))
    return True


def _renew_rotator(ctx: "Context", fence: Fence, stop: threading.Event) -> None:
    interval = fence.ttl.total_seconds() / 3
    while not stop.wait(interval):
        try:
            with ctx.store.write() as s:
                fence.check(s)
        except LeaseLost as exc:
            log.error("%s", exc)
            return
        except Exception as exc:  # the next write's fence check decides; keep trying
            log.warning("renewing the rotator lease failed: %s", exc)


def lease_ttl(ctx: "Context") -> timedelta:
    return getattr(ctx.config.daemon, "lease", None) or DEFAULT_TTL


# The daemon's leadership ----------------------------------------------------------------------


class Leadership:
    """One daemon's membership: its instance row, and the leader lease it takes when free.

    A thread renews both every third of the lease time. `is_leader` is true only until the local
    deadline of the last successful renewal, so a process that was paused stops acting as leader
    before another can have taken over; and every rotation write is fenced besides.
    """

    def __init__(self, ctx_getter, *, instance_id: str | None = None, ttl: timedelta | None = None):
        self._ctx = ctx_getter
        self.instance_id = instance_id or new_instance_id()
        self.started_at = datetime.now(timezone.utc)
        self.ttl = ttl or lease_ttl(ctx_getter())
        self.epoch: int | None = None
        self._leading_until = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # Called (on the renewing thread) when this daemon starts leading, so the leader's jobs
        # run at once instead of at their next tick: a new leader resumes a dead one's rotations.
        self.on_lead: Callable[[], None] | None = None

    @property
    def is_leader(self) -> bool:
        with self._lock:
            return self.epoch is not None and time.monotonic() < self._leading_until

    @property
    def role(self) -> str:
        return "leader" if self.is_leader else "follower"

    def start(self) -> "Leadership":
        """Register this instance (refusing a second host on one SQLite file), try to lead once,
        and start renewing."""
        ctx = self._ctx()
        self._refuse_shared_sqlite(ctx)
        self._clear_dead_holders(ctx)
        self.beat()
        self._thread = threading.Thread(target=self._loop, name="keyward-leadership", daemon=True)
        self._thread.start()
        return self

    def _refuse_shared_sqlite(self, ctx: "Context") -> None:
        if ctx.store.engine.dialect.name != "sqlite":
            return
        now = datetime.now(timezone.utc)
        fresh = timedelta(seconds=3 * self.ttl.total_seconds())
        with ctx.store.read() as s:
            others = [i for i in instances(s) if i.get("kind") == "daemon" and not i.get("stopped_at")
                      and i.get("id") != self.instance_id and now - i["updated_at"] < fresh]
        me = socket.gethostname()
        for other in others:
            if other.get("host") != me:
                raise AlreadyRunning(
                    f"keyward daemon {other.get('id')} on host {other.get('host')} (pid "
                    f"{other.get('pid')}) already uses this SQLite database; a SQLite file cannot be "
                    "shared between hosts. To run keyward on several hosts, give them one PostgreSQL "
                    "database (KEYWARD_DATABASE_URL=postgresql://…)")
            if _pid_alive(other.get("pid")) and other.get("pid") != os.getpid():
                raise AlreadyRunning(
                    f"keyward daemon {other.get('id')} (pid {other.get('pid')}) already uses this "
                    "database on this host; stop it first")

    def _clear_dead_holders(self, ctx: "Context") -> None:
        """On SQLite (one host by construction), free at once the leases of processes of this
        host that are gone (a daemon killed with SIGKILL), instead of waiting for their expiry.
        Never on PostgreSQL: pids say nothing across containers that share a host name."""
        if ctx.store.engine.dialect.name != "sqlite":
            return
        me = socket.gethostname()
        with ctx.store.write() as s:
            known = {i.get("id"): i for i in instances(s)}
            for lease in s.scalars(select(Lease)).all():
                info = known.get(holder_instance(lease.holder))
                if info is None or info.get("host") != me or _pid_alive(info.get("pid")):
                    continue
                release(s, lease.name, lease.holder)
                log.info("freed the %s lease of keyward instance %s (pid %s is gone)", lease.name,
                         info.get("id"), info.get("pid"))

    def wait_to_lead(self, timeout: float) -> bool:
        """Beat until this daemon leads or `timeout` seconds pass; return whether it leads."""
        deadline = time.monotonic() + timeout
        while not self.is_leader and time.monotonic() < deadline:
            self._stop.wait(min(0.5, self.ttl.total_seconds() / 3))
            self.beat()
        return self.is_leader

    def beat(self) -> None:
        """Renew the instance row and take or renew the leader lease; never raises."""
        ctx = self._ctx()
        started = time.monotonic()
        try:
            with ctx.store.write() as s:
                now = db_now(s)
                epoch = try_acquire(s, LEADER, self.instance_id, self.ttl)
                role = "leader" if epoch is not None else "follower"
                write_instance(s, describe(self.instance_id, "daemon", self.started_at, role=role,
                                           now=now), now)
                if epoch is not None:
                    forget_old(s, now)
        except Exception as exc:
            log.warning("leadership heartbeat failed: %s", exc)
            return
        with self._lock:
            was = self.epoch
            self.epoch = epoch
            if epoch is not None:
                # Counted from before the transaction began: never later than the database's expiry.
                self._leading_until = started + self.ttl.total_seconds()
        fence = Fence(LEADER, self.instance_id, epoch, self.ttl) if epoch is not None else None
        set_leader_fence(ctx.store, fence)
        if epoch is not None and was != epoch:
            log.warning("this daemon (%s) leads now (epoch %s): it rotates keys and polls Google",
                        self.instance_id, epoch)
            if self.on_lead is not None:
                try:
                    self.on_lead()
                except Exception as exc:
                    log.error("starting the leader's jobs failed: %s", exc)
        elif epoch is None and was is not None:
            log.warning("this daemon (%s) no longer leads", self.instance_id)

    def _loop(self) -> None:
        interval = self.ttl.total_seconds() / 3
        while not self._stop.wait(interval):
            self.beat()

    def stop(self) -> None:
        """Stop renewing, give the lease up and mark this instance stopped."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        ctx = self._ctx()
        try:
            set_leader_fence(ctx.store, None)
            with ctx.store.write() as s:
                release(s, LEADER, self.instance_id)
                rotator = read_lease(s, ROTATOR)
                if rotator is not None and holder_instance(rotator.holder) == self.instance_id:
                    release(s, ROTATOR, rotator.holder)  # a job still running is fenced off
                write_instance(s, describe(self.instance_id, "daemon", self.started_at,
                                           stopped=True, role="stopped"), db_now(s))
        except Exception as exc:
            log.debug("releasing the leader lease failed: %s", exc)
        with self._lock:
            self.epoch = None


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_leader(ctx: "Context") -> bool:
    """Return whether this process may run leader-only jobs: always, when no Leadership runs
    (a single pass, a command); otherwise only while it holds the leader lease."""
    leadership = getattr(ctx.store, "keyward_leadership", None)
    return True if leadership is None else leadership.is_leader


def attach(store: "Store", leadership: Leadership | None) -> None:
    store.keyward_leadership = leadership  # type: ignore[attr-defined]
