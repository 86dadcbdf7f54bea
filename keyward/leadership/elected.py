"""The daemon's side: an instance row renewed with the `leader` lease. Only the leader rotates,
polls Cloud Monitoring, refreshes limits and re-checks invalid keys; every daemon serves reports,
publishes and answers status.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from sqlalchemy import select

from keyward.errors import AlreadyRunning
from keyward.leadership.leases import (LEADER, ROTATOR, Fence, db_now, read_lease, release,
                                       set_leader_fence, try_acquire)
from keyward.leadership.members import (describe, forget_old, holder_instance, instances,
                                        pid_alive, write_instance)
from keyward.leadership.rotator import lease_ttl
from keyward.storage.models import Lease

if TYPE_CHECKING:
    from keyward.context import Context
    from keyward.storage.store import Store

log = logging.getLogger(__name__)


class Leadership:
    """One daemon's membership: its instance row, and the leader lease it takes when free.

    A thread renews both every third of the lease time. `is_leader` is true only until the local
    deadline of the last successful renewal, so a process that was paused stops acting as leader
    before another can have taken over; and every rotation write is fenced besides.
    """

    def __init__(self, ctx_getter, *, instance_id: str | None = None, ttl: timedelta | None = None):
        self._ctx = ctx_getter
        self.instance_id = instance_id or secrets.token_hex(6)
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
            if pid_alive(other.get("pid")) and other.get("pid") != os.getpid():
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
                if info is None or info.get("host") != me or pid_alive(info.get("pid")):
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


def is_leader(ctx: "Context") -> bool:
    """Return whether this process may run leader-only jobs: always, when no Leadership runs
    (a single pass, a command); otherwise only while it holds the leader lease."""
    leadership = getattr(ctx.store, "keyward_leadership", None)
    return True if leadership is None else leadership.is_leader


def attach(store: "Store", leadership: Leadership | None) -> None:
    store.keyward_leadership = leadership  # type: ignore[attr-defined]
