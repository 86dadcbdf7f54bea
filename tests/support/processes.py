"""Facts about real processes, read from /proc (no procps needed)."""

from __future__ import annotations


def state(pid: int) -> str | None:
    """The process's state letter (R running, S sleeping, T stopped, Z zombie...), None when gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped) counts as gone."""
    return state(pid) not in (None, "Z")
