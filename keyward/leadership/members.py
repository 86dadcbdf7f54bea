"""Who takes part: each process that may hold a lease describes itself in a `meta` row
`instance.<id>` (kind, host, pid, version, role, heartbeat), which status shows and error messages
quote. An instance is one process, never a host name: containers and cloned machines share those.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import keyward
from keyward.storage.models import Meta

INSTANCE_PREFIX = "instance."
# Instance rows of processes gone for this long are removed by the leader.
FORGET_AFTER = timedelta(days=1)


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


def pid_alive(pid: Any) -> bool:
    """Return whether process `pid` of this host exists (meaningful on this host only)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
