"""Choose each pool's current key, record the choice, and publish it where the pool says.

Selection runs again on every call: after an exhausting quota report, an invalid key, a promotion
or a retirement (the services that see those call `publish_pools`), and on the daemon's timer. The
choice itself is `keyward.quota.selection.choose`, which is deterministic and keeps the current key
within a margin, so calling this often never makes the published key flap.

The choice is made first in one read transaction for every pool; only a pool whose choice differs
from its row (another key, another reason, exhaustion starting or ending) takes a write transaction,
where it is made again and journaled. A sink is written only when it does not hold the chosen key
(its `read()` is compared with the key's fingerprint, so checking never opens the stored key
string), and read only when its change marker (`Sink.change_marker`: a file's stat) moved since it
was last seen holding that key, or VERIFY_SECONDS passed: a timer pass with nothing changed writes
nothing, reads no sink, and still repairs a file someone deleted or edited on the next pass. A sink
that cannot tell (the keyring) is read on every pass. `Pool.published_key_id` records the key
every sink confirmed; the post-publish hook runs when it changes. One sink's failure never stops the
others; the pool stays unconfirmed, so the next call retries. After every pool and sink was tried,
a `PublishError` summarising the failures is raised (its `results` attribute holds every
PublishResult, successes included); the daemon logs it and goes on.

When every project is exhausted the least-bad key stays published and the pool says so loudly
(warning log, journal, `all_exhausted` in the state file for `keyward current --check`). When the
pool has no usable active key, nothing is withdrawn: a stale key is better than none.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Sequence

from keyward.errors import KeywardError, PublishError
from keyward.keystrings import redact
from keyward.publishing.candidates import (KeyOffer, LoadFacts, PoolOffers, build_candidates, publishable,
                                           top_candidates)
from keyward.publishing.sinkset import sinks_for
from keyward.publishing.statefile import cleanup_state_temp_files, write_state
from keyward.quota.selection import Candidate, choose
from keyward.storage import store as q

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keyward.context import Context
    from keyward.storage.models import Pool
    from keyward.storage.store import PoolSnapshot
    from keyward.usage.loads import LoadBook

log = logging.getLogger(__name__)

STATE_LABEL = "state file"
NO_KEY_MARK = "no usable key"
# A sink whose change marker says it still holds the key is read anyway after this long.
VERIFY_SECONDS = 60.0
# Triggers after which the pool's active keys are the same as before: the kept offers stay valid.
KEPT_OFFERS_TRIGGERS = ("timer", "exhausted")


@dataclass
class PublishResult:
    """What one pool's pass chose and did. `failures` maps a sink's description to its error."""

    pool: str
    key_id: str | None
    project_id: str | None
    masked: str | None
    reason: str
    switched: bool
    all_exhausted: bool
    published_to: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    hook_ok: bool | None = None  # None: no hook ran

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class _Decision:
    pool: str
    key_id: str | None
    project_id: str | None
    masked: str | None
    secret: str | None  # None until a sink needs it
    fingerprint: str | None  # of the key string: what a sink's content is checked against
    reason: str
    switched: bool
    all_exhausted: bool
    published_key_id: str | None
    published_at: datetime | None
    exhausted_until: datetime | None = None  # when the chosen key's project frees up, if exhausted


def _loads(s: "Session", pool: "Pool", now: datetime) -> dict[str, LoadFacts]:
    from keyward.usage.loads import pool_loads

    return {pl.project_id: LoadFacts(pl.load, pl.exhausted_until) for pl in pool_loads(s, pool, now, summaries=True)}


def publish_pools(ctx: "Context", pools: Sequence[str] | None = None, *, trigger: str) -> list[PublishResult]:
    """Re-run selection for `pools` (all when None) and publish where needed; return one result each.

    `trigger` says why (e.g. "timer", "quota", "invalid-key", "promotion") for the journal and logs.
    Raise NotFound for an unknown pool name before doing anything, and PublishError after every
    pool was tried when any sink or state file could not be written.
    """
    book = getattr(ctx, "loads", None)
    if book is not None and trigger not in KEPT_OFFERS_TRIGGERS:
        book.forget_offers()  # a key was promoted, retired, reinstated or taken out
    # Choosing in a read transaction first pays when the choice usually stands: on the timer, and
    # whenever kept loads make choosing cheap. A process without them reacting to an event (a 429
    # reported without a daemon) would choose twice from the database, so it goes straight on.
    try_quiet = trigger == "timer" or book is not None
    quiet: dict[str, _Decision | None] = {}
    with ctx.store.read() as s:  # one read for every pool whose choice stays as recorded
        snapshots = q.pool_snapshots(s, pools)
        now = ctx.now()
        for snap in snapshots:
            quiet[snap.name] = _quiet_decision(ctx, s, snap, now) if try_quiet else None
    results: list[PublishResult] = []
    for snap in snapshots:
        name = snap.name
        try:
            results.append(_publish_pool(ctx, name, trigger, quiet[name]))
        except KeywardError as exc:  # storage trouble for one pool must not stop the others
            log.error("pool %s: selection failed: %s", name, exc)
            results.append(PublishResult(name, None, None, None, f"selection failed: {exc}", False, False,
                                         failures={"selection": str(exc)}))
    failed = [r for r in results if r.failures]
    if failed:
        lines = [f"  {r.pool}: {_with_label(where, why)}" for r in failed for where, why in sorted(r.failures.items())]
        error = PublishError(f"{len(failed)} pool(s) not fully published:\n" + "\n".join(lines))
        error.results = results  # type: ignore[attr-defined]
        raise error
    return results


def _publish_pool(ctx: "Context", name: str, trigger: str, quiet: _Decision | None) -> PublishResult:
    now = ctx.now()
    decision = quiet if quiet is not None else _select(ctx, name, trigger, now)
    result = PublishResult(name, decision.key_id, decision.project_id, decision.masked, decision.reason,
                           decision.switched, decision.all_exhausted)
    entry = sinks_for(ctx, name)
    result.failures.update(entry.broken)
    complete = False
    if decision.key_id is not None and _budget_stopped(ctx, name, now):
        return _withdraw_for_budget(ctx, name, decision, result, entry, now)
    if decision.key_id is not None:
        changed = decision.key_id != decision.published_key_id
        secret = decision.secret
        for label, sink, marker in _sinks_to_check(decision, entry):
            try:
                if _holds(sink, decision.fingerprint):
                    if marker is not None:
                        entry.confirmed[label] = (decision.key_id, marker, time.monotonic())
                    continue
                if secret is None:
                    secret = _secret_of(ctx, decision.key_id)
                sink.publish(secret, decision.key_id)
                result.published_to.append(label)
            except KeywardError as exc:
                result.failures[label] = redact(str(exc))
            except Exception as exc:  # a plugin sink's own error: still isolate it
                result.failures[label] = f"{exc.__class__.__name__}: {redact(str(exc))}"
        complete = not result.failures
        _after_publish(ctx, name, decision, result, entry.failing, changed, complete, trigger, now)
        if changed and complete:
            result.hook_ok = _run_hook(ctx, name, decision.key_id)
    published_at = now if (complete and decision.key_id != decision.published_key_id) else decision.published_at
    try:
        write_state(ctx.config.runtime_dir, name, {
            "pool": name,
            "key_id": decision.key_id,
            "project_id": decision.project_id,
            "masked": decision.masked,
            "all_exhausted": decision.all_exhausted,
            "exhausted_until": decision.exhausted_until.isoformat() if decision.exhausted_until else None,
            "reason": decision.reason,
            "published": complete,
            "published_at": published_at.isoformat() if published_at else None,
        })
    except PublishError as exc:
        result.failures[STATE_LABEL] = str(exc)
    for label, why in result.failures.items():
        log.error("pool %s: %s (kept what it held; retried on the next pass)", name, _with_label(label, why))
    return result


def _sinks_to_check(d: _Decision, entry) -> list[tuple[str, Any, Any]]:
    """The sinks that may not hold the chosen key, each with its change marker taken before it is
    read (so a change after the read shows on the next pass).

    A sink is skipped when it was last seen holding this very key and its marker has not changed
    since, for at most VERIFY_SECONDS: a sink whose marker is None is read on every pass.
    """
    mono = time.monotonic()
    pending: list[tuple[str, Any, Any]] = []
    for label, sink in entry.sinks:
        try:
            marker = sink.change_marker()
        except Exception:  # a plugin sink that cannot tell: read it
            marker = None
        seen = entry.confirmed.pop(label, None)
        if (marker is not None and seen is not None and seen[0] == d.key_id and seen[1] == marker
                and mono - seen[2] < VERIFY_SECONDS):
            entry.confirmed[label] = seen
            continue
        pending.append((label, sink, marker))
    return pending


def _secret_of(ctx: "Context", key_id: str | None) -> str:
    """The chosen key's string, read when a sink must be written (a quiet pass does not open it)."""
    with ctx.store.read() as s:
        key = q.find_key(s, key_id) if key_id else None
        secret = key.secret if key is not None else None
    if secret is None:
        book = getattr(ctx, "loads", None)
        if book is not None:
            book.forget_offers()
        raise PublishError(f"key {key_id} was removed while it was being published; "
                           "the next pass chooses again")
    return secret


def _budget_stopped(ctx: "Context", name: str, now: datetime) -> bool:
    """True when the pool's budget says `stop = true` and one of its periods is spent."""
    pool_cfg = ctx.config.pools.get(name)
    if pool_cfg is None or pool_cfg.budget is None or not pool_cfg.budget.stop:
        return False
    from keyward.cost import budget_spent

    with ctx.store.read() as s:
        check = budget_spent(s, ctx.config, name, now)
    return bool(check and check.spent)


def _withdraw_for_budget(ctx: "Context", name: str, d: _Decision, result: PublishResult, entry,
                         now: datetime) -> PublishResult:
    """The budget is spent and says stop: take the key out of every sink until the period ends."""
    result.reason = "budget spent: the key is withdrawn until the budget's period ends"
    entry.confirmed.clear()
    for label, sink in entry.sinks:
        try:
            sink.withdraw()
        except KeywardError as exc:
            result.failures[label] = redact(str(exc))
    with ctx.store.write() as s:
        pool = q.get_pool(s, name)
        if pool.published_key_id is not None:
            pool.published_key_id, pool.published_at = None, None
            q.journal(s, "budget.stopped", result.reason, level="error", pool=name, key_id=d.key_id, now=now)
            log.error("pool %s: %s", name, result.reason)
    try:
        write_state(ctx.config.runtime_dir, name, {
            "pool": name, "key_id": None, "project_id": None, "masked": None, "all_exhausted": False,
            "exhausted_until": None, "reason": result.reason, "published": False, "published_at": None,
            "budget_spent": True,
        })
    except PublishError as exc:
        result.failures[STATE_LABEL] = str(exc)
    return result


def _with_label(label: str, why: str) -> str:
    return why if why.startswith(label) else f"{label}: {why}"


def _holds(sink: Any, fingerprint: str) -> bool:
    """Whether the sink holds the key with this fingerprint (compared so that checking a sink
    never needs the stored key string opened)."""
    try:
        held = sink.read()
    except KeywardError:
        return False  # unreadable: publish again, which reports the real problem
    return held is not None and q.fingerprint(held) == fingerprint


def _select(ctx: "Context", name: str, trigger: str, now: datetime) -> _Decision:
    """Choose the pool's key and record it on the pool row, journaled, in one write transaction.

    Called when the choice made in the read transaction (`_quiet_decision`) would change the row:
    it is made again here, so a choice another process recorded meanwhile is seen.
    """
    with ctx.store.write() as s:
        pool = q.get_pool(s, name)
        book = getattr(ctx, "loads", None)
        candidates = (_candidates(s, pool, now) if book is None
                      else _kept_candidates(s, book, pool, now))
        choice = choose(candidates, pool.current_key_id, now, ctx.config.pool_margin(name))
        key = q.find_key(s, choice.key_id) if choice.key_id else None
        if book is not None and choice.key_id and not _publishable(key, pool):
            # Kept offers went stale (a key changed in another process): decide from the database.
            book.forget_offers()
            candidates = _kept_candidates(s, book, pool, now)
            choice = choose(candidates, pool.current_key_id, now, ctx.config.pool_margin(name))
            key = q.find_key(s, choice.key_id) if choice.key_id else None
        was_exhausted = bool(pool.all_exhausted)
        if choice.key_id is None:
            return _keep_last(s, pool, choice.reason, trigger, now)
        switched = choice.key_id != pool.current_key_id
        pool.current_key_id = choice.key_id
        pool.current_reason = choice.reason
        pool.all_exhausted = choice.all_exhausted
        if switched or pool.current_since is None:
            pool.current_since = now
        level = "warning" if choice.all_exhausted else "info"
        if switched:
            q.journal(s, "selection.switched", f"{choice.reason} (trigger: {trigger})", level=level,
                      pool=name, project=choice.project_id, key_id=choice.key_id, now=now)
            log.log(logging.WARNING if choice.all_exhausted else logging.INFO,
                    "pool %s: selected key %s of %s: %s", name, choice.key_id, choice.project_id, choice.reason)
        elif choice.all_exhausted and not was_exhausted:
            q.journal(s, "selection.exhausted", choice.reason, level="warning", pool=name,
                      project=choice.project_id, key_id=choice.key_id, now=now)
        if choice.all_exhausted and (switched or not was_exhausted):
            log.warning("pool %s: every project is exhausted; keeping the least-bad key %s", name, choice.key_id)
        elif was_exhausted and not choice.all_exhausted:
            q.journal(s, "selection.recovered", "a project has quota again", pool=name,
                      project=choice.project_id, key_id=choice.key_id, now=now)
            log.info("pool %s: a project has quota again", name)
        chosen = next((c for c in candidates if c.key_id == choice.key_id), None)
        until = chosen.exhausted_until if chosen is not None and choice.all_exhausted else None
        return _Decision(name, key.key_id, choice.project_id, key.masked, key.secret, key.fingerprint,
                         choice.reason, switched, choice.all_exhausted, pool.published_key_id,
                         pool.published_at, until)


def _quiet_decision(ctx: "Context", s: "Session", snap: "PoolSnapshot", now: datetime) -> _Decision | None:
    """The decision when choosing again leaves the pool row as it is, else None (a write is needed).

    This is the common timer pass: no write transaction, no ORM object, and the key string is not
    opened (the sinks' change markers usually show that no sink needs it). A storage error here is
    left to the full path, which reports it.
    """
    from sqlalchemy.exc import SQLAlchemyError

    book = getattr(ctx, "loads", None)
    try:
        candidates = _candidates(s, snap, now) if book is None else _kept_candidates(s, book, snap, now)
        choice = choose(candidates, snap.current_key_id, now, ctx.config.pool_margin(snap.name))
    except (KeywardError, SQLAlchemyError) as exc:  # the full path meets it again and reports it
        log.debug("pool %s: quiet selection gave up: %s", snap.name, exc)
        return None
    if (choice.key_id is None or choice.key_id != snap.current_key_id or snap.current_since is None
            or choice.reason != snap.current_reason or choice.all_exhausted != bool(snap.all_exhausted)):
        return None
    if snap.current_state != "active" or not snap.current_has_secret or snap.current_pool_pk != snap.id:
        return None  # the full path sees it too, drops stale kept offers and chooses again
    chosen = next((c for c in candidates if c.key_id == choice.key_id), None)
    until = chosen.exhausted_until if chosen is not None and choice.all_exhausted else None
    return _Decision(snap.name, choice.key_id, snap.current_project_id, snap.current_masked, None,
                     snap.current_fingerprint, choice.reason, False, choice.all_exhausted,
                     snap.published_key_id, snap.published_at, until)


def _offers(s: "Session", pool: "Pool") -> list[KeyOffer]:
    return [KeyOffer(pid, key_id, bool(has_secret), state, kind)
            for pid, key_id, has_secret, state, kind in q.active_key_offers(s, pool)]


def _gone_current(s: "Session", pool: "Pool") -> KeyOffer | None:
    """The current key when it is no longer active, offered as unusable so the journal says why it
    was left (invalid, retired)."""
    gone = q.find_key(s, pool.current_key_id) if pool.current_key_id else None
    if gone is not None and gone.project.pool_id == pool.id:
        return KeyOffer(gone.project.project_id, gone.key_id, False, gone.state, gone.kind)
    return None


def _candidates(s: "Session", pool: "Pool", now: datetime) -> list[Candidate]:
    """Every candidate, from the database (a process without kept loads: the CLI)."""
    offers = _offers(s, pool)
    if pool.current_key_id and all(o.key_id != pool.current_key_id for o in offers):
        offers += [g for g in [_gone_current(s, pool)] if g is not None]
    return build_candidates(offers, _loads(s, pool, now), pool.current_key_id)


def _kept_candidates(s: "Session", book: "LoadBook", pool: "Pool", now: datetime) -> list[Candidate]:
    """The candidates from the top of the daemon's kept loads (see keyward.usage.loads)."""
    kept = book.pool(s, pool, now)
    if kept.offers is None or (pool.current_key_id and pool.current_key_id not in kept.offers.key_ids):
        kept.offers = PoolOffers.of(_offers(s, pool))
    offers: PoolOffers = kept.offers
    facts = kept.loads  # ProjectLoads carry the LoadFacts fields
    top = top_candidates(kept.order, facts, offers, pool.current_key_id, now)
    candidates = build_candidates(offers.offers, facts, pool.current_key_id) if top is None else top
    if pool.current_key_id and pool.current_key_id not in offers.key_ids:
        gone = _gone_current(s, pool)
        if gone is not None:
            candidates += build_candidates([gone], facts, pool.current_key_id)
    return candidates


def _publishable(key, pool: "Pool") -> bool:
    return (key is not None and publishable(key.state, key.kind, key.has_secret)
            and key.project.pool_id == pool.id)


def _keep_last(s: "Session", pool: "Pool", why: str, trigger: str, now: datetime) -> _Decision:
    """No active key can be published: keep whatever sinks hold and say so once, as an error."""
    kept = q.find_key(s, pool.current_key_id) if pool.current_key_id else None
    reason = f"{NO_KEY_MARK}: {why}" + (f"; keeping {kept.key_id} published" if kept else "; nothing published")
    if not (pool.current_reason or "").startswith(NO_KEY_MARK):
        q.journal(s, "selection.no_key", f"{reason} (trigger: {trigger})", level="error", pool=pool.name, now=now)
        log.error("pool %s: %s", pool.name, reason)
    pool.current_reason = reason
    pool.all_exhausted = False
    return _Decision(pool.name, None, kept.project.project_id if kept else None, kept.masked if kept else None,
                     None, None, reason, False, False, pool.published_key_id, pool.published_at)


def _after_publish(ctx: "Context", name: str, d: _Decision, result: PublishResult, failing: dict[str, str],
                   changed: bool, complete: bool, trigger: str, now: datetime) -> None:
    """Confirm a complete publication on the pool row, and journal sinks that start or stop failing."""
    new_failures = {k: v for k, v in result.failures.items() if k not in failing}
    recovered = [k for k in failing if k not in result.failures]
    if not (new_failures or recovered or (changed and complete)):
        return
    with ctx.store.write() as s:
        pool = q.get_pool(s, name)
        for label, why in new_failures.items():
            q.journal(s, "publish.failed", f"{label}: {why}", level="error", pool=name, key_id=d.key_id, now=now)
        for label in recovered:
            q.journal(s, "publish.recovered", f"{label} holds the key again", pool=name, key_id=d.key_id, now=now)
        # Another process may have chosen again meanwhile; confirm only what is still current.
        if changed and complete and pool.current_key_id == d.key_id:
            pool.published_key_id, pool.published_at = d.key_id, now
            q.journal(s, "key.published", f"{d.masked} of {d.project_id} published to "
                      f"{len(result.published_to)} sink(s) (trigger: {trigger})",
                      pool=name, project=d.project_id, key_id=d.key_id, now=now)
    failing.clear()
    failing.update(result.failures)


def _run_hook(ctx: "Context", name: str, key_id: str) -> bool | None:
    pool_cfg = ctx.config.pools.get(name)
    if pool_cfg is None or not pool_cfg.post_publish:
        return None
    from keyward.sinks.hook import run_post_publish

    return run_post_publish(pool_cfg.post_publish, name, key_id, pool_cfg.post_publish_timeout.total_seconds())


def cleanup(ctx: "Context") -> int:
    """Remove temp files that crashed writers left beside file sinks and state files; return how many.

    Called once when the daemon starts, before anything publishes.
    """
    from keyward.sinks.file import FileSink

    with ctx.store.read() as s:
        names = [p.name for p in q.list_pools(s)]
    removed = cleanup_state_temp_files(ctx.config.runtime_dir)
    for name in sorted(set(names) | set(ctx.config.pools)):
        for _label, sink in sinks_for(ctx, name).sinks:
            if isinstance(sink, FileSink):
                removed += sink.cleanup_stale_temp_files()
    if removed:
        log.info("removed %d stale temp file(s) left by an interrupted publish", removed)
    return removed
