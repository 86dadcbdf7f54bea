"""Key strings at rest: the start-up check, sealing a plain database in place, and rekeying.

The daemon calls `check` before it does anything, so a wrong or missing master key stops it at the
door (naming where it looked) instead of failing in every job. `encrypt` and `rekey` move every row
in one transaction: a reader sees the old values or the new ones, never a mixture it cannot open,
and a tampered row or a missing key rolls the whole change back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keyward.errors import MasterKeyError
from keyward.storage.secret_queries import PLAIN, Resealed, reseal_all, secret_counts

if TYPE_CHECKING:
    from keyward.context import Context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AtRest:
    """How the stored key strings are kept: counts per master key id ("plain"), and the keys found."""

    counts: dict[str, int]
    primary: str | None
    held: tuple[str, ...]
    looked: str

    @property
    def plain(self) -> int:
        return self.counts.get(PLAIN, 0)

    def describe(self) -> str:
        sealed = {k: n for k, n in self.counts.items() if k != PLAIN}
        parts = [f"{n} sealed with master key {k}" for k, n in sorted(sealed.items())]
        if self.plain:
            parts.append(f"{self.plain} in plain text")
        return ", ".join(parts) or "no key strings stored"


def inspect(ctx: "Context") -> AtRest:
    """Return the counts and the master keys found; raise MasterKeyError for an unusable source."""
    store = ctx.store
    with store.engine.connect() as conn:
        counts = secret_counts(conn)
    found = store.sealer.found(refresh=True)
    return AtRest(counts, found.keys[0].id if found.keys else None, tuple(k.id for k in found.keys),
                  found.where())


def check(ctx: "Context") -> AtRest:
    """Make sure every sealed secret can be opened with a master key found; return the state.

    Raise MasterKeyError naming the missing key ids and every place looked. Opens one secret per
    master key, so a key file holding other bytes under a matching name cannot slip through.
    """
    state = inspect(ctx)
    missing = sorted(k for k in state.counts if k != PLAIN and k not in state.held)
    if missing:
        which = ", ".join(f"{k} ({state.counts[k]} secret(s))" for k in missing)
        if not state.held:
            raise MasterKeyError(f"the database holds secrets sealed with master key {which}, and no master "
                                 f"key was found (looked in: {state.looked})")
        raise MasterKeyError(f"the database holds secrets sealed with master key {which}, which is not among "
                             f"the master keys found ({', '.join(state.held)}; looked in: {state.looked})")
    _open_one_per_key(ctx, [k for k in state.counts if k != PLAIN])
    if state.primary is None and state.plain:
        log.warning("no master key found (looked in: %s): %d key string(s) are stored in plain text; "
                    "create one with `keyward db master-key init`", state.looked, state.plain)
    elif state.primary is not None and state.plain:
        log.warning("%d key string(s) are stored in plain text: seal them with `keyward db encrypt`", state.plain)
    if state.primary is not None:
        log.info("key strings at rest: %s; new ones are sealed with master key %s", state.describe(), state.primary)
    return state


def _open_one_per_key(ctx: "Context", master_ids: list[str]) -> None:
    from sqlalchemy import select

    from keyward.storage.models import Key

    with ctx.store.read() as s:
        for master_id in master_ids:
            key = s.scalars(select(Key).where(Key.sealed_by == master_id).limit(1)).first()
            if key is not None:
                key.secret  # noqa: B018 - opening it is the check


def _primary(ctx: "Context"):
    master = ctx.store.sealer.primary
    if master is None:
        found = ctx.store.sealer.found()
        raise MasterKeyError(f"no master key found (looked in: {found.where()}); create one with "
                             "`keyward db master-key init`")
    return master


def encrypt(ctx: "Context") -> Resealed:
    """Seal every key string still stored in plain text with the primary master key."""
    master = _primary(ctx)
    with ctx.store.engine.begin() as conn:
        result = reseal_all(conn, ctx.store.sealer, master, only_plain=True, kind="db.encrypt", now=ctx.now())
    _forget_old_versions(ctx)
    log.info("%s", result.describe())
    return result


def _forget_old_versions(ctx: "Context") -> None:
    """On SQLite, move the new pages into the file and empty the write-ahead log, where the plain
    pages would otherwise stay until overwritten. (PostgreSQL keeps dead row versions until VACUUM:
    the README says so.)"""
    from keyward.storage.engine import is_sqlite

    if not is_sqlite(ctx.store.engine):
        return
    raw = ctx.store.engine.raw_connection()  # outside any transaction, which a checkpoint needs
    try:
        busy = raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    finally:
        raw.close()
    if busy:
        log.warning("a reader kept the write-ahead log busy; the next checkpoint empties it")


def rekey(ctx: "Context") -> Resealed:
    """Seal every key string with the primary master key (the first one found): sealed values get
    their data key re-wrapped, plain ones are sealed. Journaled as `db.rekey`, without secrets."""
    master = _primary(ctx)
    with ctx.store.engine.begin() as conn:
        result = reseal_all(conn, ctx.store.sealer, master, kind="db.rekey", now=ctx.now())
    _forget_old_versions(ctx)
    log.info("%s", result.describe())
    return result
