"""One rotation run at a time: the `rotator` lease, held by the leader's rotation job or by
`keyward rotate` for the length of a run, renewed by a thread while it lasts, and fencing the run's
writes. A command waits a bounded time for it and otherwise names the holder.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from keyward.errors import AlreadyRunning, KeywardError, LeaseLost
from keyward.leadership.leases import (DEFAULT_TTL, ROTATOR, Fence, _local, db_now, read_lease,
                                       release, try_acquire)
from keyward.leadership.members import (describe, describe_holder, holder_instance, instances,
                                        pid_alive, write_instance)

if TYPE_CHECKING:
    from keyward.context import Context

log = logging.getLogger(__name__)


@contextmanager
def rotating(ctx: "Context", *, wait: float, kind: str = "command",
             instance_id: str | None = None, ttl: timedelta | None = None) -> Iterator[Fence]:
    """Hold the rotator lease for the body; wait up to `wait` seconds for it.

    Raise AlreadyRunning naming the holder (daemon or command, host and pid) when it stays taken.
    A thread renews the lease while the body runs; the body's rotation writes are fenced by it.
    """
    ttl = ttl or lease_ttl(ctx)
    instance_id = instance_id or secrets.token_hex(6)
    holder = f"{instance_id}:{secrets.token_hex(3)}"
    started = datetime.now(timezone.utc)
    deadline = time.monotonic() + max(0.0, wait)
    if kind != "daemon":  # a daemon's instance row is kept by its Leadership
        with ctx.store.write() as s:
            write_instance(s, describe(instance_id, kind, started), db_now(s))
    while True:
        with ctx.store.write() as s:
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
    if info is None or info.get("host") != socket.gethostname() or pid_alive(info.get("pid")):
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


