"""What `keyward status` shows: one dict, built from a handful of bulk queries and no Google calls.

`build_status(ctx)` returns a JSON-ready dict (`keyward status --json` prints it with sorted keys).
The schema is stable: fields are only ever added, and `schema_version` changes if one is removed or
changes meaning. Times are ISO 8601 UTC strings ("2026-03-10T18:00:30+00:00"), durations whole
seconds, fractions plain numbers (1.0 = at the limit). No key string appears anywhere: keys are
named by id and by mask ("AQ.…wxyz").

    schema_version   1
    generated_at     time the status was taken
    daemon           {running: bool, stale: bool, stopped_at, pid, host, version, started_at,
                      heartbeat_at, heartbeat_age_s}; running is true while a heartbeat is younger
                      than 3 × daemon.heartbeat; stopped_at is set when the daemon last stopped
                      cleanly (then stale is false); the other fields are null without any heartbeat
    pools[]          sorted by name:
      name, model, margin          the pool and the selection margin it uses
      current                      null, or {key_id, masked, project_id, reason, since}: the key
                                   selection chose, why (e.g. "least loaded: a 3% vs 10% for b"),
                                   and since when it is the pool's key
      all_exhausted                every project is out of quota; the least-bad key stays published
      published_key_id, published_at   the key every sink last confirmed, and when
      sinks[]                      one line per sink ("file /run/keyward/main.key (raw, 0600)")
      projects[]                   project ids in the pool
      cost                         null without [prices]; else {currency, day, month, unpriced_models[],
                                   budget: null | {daily, monthly, warn_at, stop, fraction, period,
                                   warn, spent}}: estimated spend of the Pacific day and month
    projects[]       sorted by project id:
      project_id, pool, model, managed
      usage          {rpm|tpm|rpd: {used: int, limit: int|null}}; rpm/tpm count the current and the
                     previous minute, rpd the Pacific day so far; limit null = unknown/unlimited
      limit_source   "config" | "google" | "cli" | null (no limits known)
      load           highest used/limit fraction, null when no limit is known or the model has a
                     limit of 0 (then `no_quota` is true)
      no_quota       true when a limit is 0: the model is not offered to the project
      pacific_day    the America/Los_Angeles date RPD counts ("2026-03-10")
      rpd_reset_at   when the daily count resets (next Pacific midnight)
      exhausted, exhausted_until, exhausted_scope   a 429 said so, until when, "minute"|"tokens"|"day"
      rotation       {failures: int, backoff_until}: failed rotation attempts and the next try
      keys[]         live and invalid keys (retired and failed ones are left out), oldest first:
                     {key_id, kind: "auth"|"standard", state, origin: "keyward"|"manual", masked,
                      current: bool, created_at, age_s, rotate_after, grace_until, invalid_reason}
      cost           null without [prices]; else {currency, day, month, unpriced_models[]}
    warnings[]       {code, level: "warning"|"error", message, pool, project_id, key_id}; codes:
                     daemon_not_running, daemon_stale, all_exhausted, no_key, not_published,
                     rotation_overdue, rotation_failing, standard_key, invalid_key, recent_errors,
                     budget_warning, budget_reached,
                     secrets_plain (key strings stored without a master key sealing them)
    secrets          {sealed: int, plain: int, master_keys: {id: count}}: how stored key strings are
                     kept at rest (counted from the rows; status never needs the master key)
    recent_errors[]  error-level journal events of the last 24 hours, newest first (at most 20):
                     {at, kind, message, pool, project_id, key_id, resolved}; resolved is true once
                     a later event undid it (RESOLVED_BY); only unresolved ones make the
                     recent_errors warning
    hosts[]          the daemons sharing this database (heard from in the last hour), leader first:
                     {instance_id, host, pid, version, role: "leader"|"follower"|"stopped",
                      started_at, heartbeat_at, heartbeat_age_s, lease_expires_at (the leader's)}
    lease            the leader lease: null, or {holder, epoch, expires_at, held: bool}; warning
                     code no_leader when no daemon holds it (nothing rotates or polls Google)
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from keyward.keystrings import redact
from keyward.quota.windows import Limits, Usage, load, minute_floor, next_pacific_midnight, pacific_date

if TYPE_CHECKING:
    from keyward.context import Context

SCHEMA_VERSION = 1
HIDDEN_STATES = ("retired", "failed")
ERROR_WINDOW = timedelta(hours=24)
MAX_ERRORS = 20
HEARTBEAT_META = "heartbeat"
LEADER_LEASE = "leader"  # keyward.leadership.LEADER

# An error stops being current once a later event shows its cause gone: the project rotated after
# a failed rotation, the pool published after having no key, the sink took the key again. The
# subject must match: the project for rotation and key events, the pool for the others.
RESOLVED_BY: dict[str, tuple[str, ...]] = {
    "rotation.failed": ("rotation.done",),
    "rotation.invalid": ("rotation.done", "key.added", "key.replaced", "key.reinstated"),
    "key.invalid": ("rotation.done", "key.added", "key.replaced", "key.reinstated"),
    "selection.no_key": ("key.published", "selection.switched", "selection.recovered"),
    "publish.failed": ("publish.recovered", "key.published"),
}
_BY_POOL = ("selection.", "publish.")


def iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(timezone.utc).isoformat(timespec="seconds")


def build_status(ctx: "Context") -> dict[str, Any]:
    """Return the status dict documented above, read in one read transaction."""
    from keyward.config.pools import pool_sinks
    from keyward.storage import read_queries as rq

    now = ctx.now()
    with ctx.store.read_rows() as conn:
        pools = rq.pool_rows(conn)
        projects = rq.status_projects(conn, now)
        keys = rq.status_keys(conn)
        errors = [e for e in rq.recent_events(conn, MAX_ERRORS, levels=["error"]) if e.at >= now - ERROR_WINDOW]
        resolved = _resolved(conn, errors)
        beat = rq.meta_value(conn, HEARTBEAT_META)
        daemons, lease = _members(conn)
        from keyward.cost import status_costs

        costs = status_costs(conn, ctx.config, now)  # None without [prices]
    by_id = {k.key_id: k for k in keys}
    current_ids = {p.current_key_id for p in pools if p.current_key_id}
    pools_with_active = {k.pool_id for k in keys if k.state == "active" and k.has_secret}
    warnings: list[dict[str, Any]] = []
    daemon = _daemon(ctx, beat, now, warnings)

    pool_out = []
    members: dict[str, list[str]] = {}
    for p in projects:
        members.setdefault(p.pool_name, []).append(p.project_id)
    for pool in pools:
        cur = by_id.get(pool.current_key_id) if pool.current_key_id else None
        pool_out.append({
            "name": pool.name,
            "model": pool.model,
            "margin": ctx.config.pool_margin(pool.name),
            "current": None if pool.current_key_id is None else {
                "key_id": pool.current_key_id,
                "masked": cur.masked if cur else None,
                "project_id": cur.project_id if cur else None,
                "reason": pool.current_reason,
                "since": iso(pool.current_since),
            },
            "all_exhausted": bool(pool.all_exhausted),
            "published_key_id": pool.published_key_id,
            "published_at": iso(pool.published_at),
            "sinks": [_describe(pool.name, sink) for sink in pool_sinks(ctx.config, pool.name)],
            "projects": members.get(pool.name, []),
        })
        _pool_warnings(pool, pool.id in pools_with_active, warnings)
        pool_out[-1]["cost"] = costs[1].get(pool.name) if costs else None
        _budget_warning(pool_out[-1], warnings)

    keys_of: dict[str, list] = {}
    for k in keys:
        if k.state not in HIDDEN_STATES:
            keys_of.setdefault(k.project_id, []).append(k)
    window = _Window(now)
    project_out = [_project(p, keys_of.get(p.project_id, []), current_ids, window, warnings) for p in projects]
    for item in project_out:
        item["cost"] = (costs[0].get(item["project_id"]) or _no_spend(costs)) if costs else None
    secrets = _secrets_at_rest(keys, warnings)
    current_errors = [e for e in errors if e.id not in resolved]
    if current_errors:
        warnings.append(_warning("recent_errors", "error",
                                 f"{len(current_errors)} error(s) in the journal in the last 24 hours; newest: "
                                 f"{redact(current_errors[0].message)}"))
    hosts, lease_out = _hosts(daemons, lease, now, warnings)
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": iso(now),
        "daemon": daemon,
        "hosts": hosts,
        "lease": lease_out,
        "pools": pool_out,
        "projects": project_out,
        "warnings": warnings,
        "recent_errors": [_event(e, e.id in resolved) for e in errors],
        "secrets": secrets,
    }


def _no_spend(costs) -> dict[str, Any]:
    from keyward.cost import spend_json

    any_pool = next(iter(costs[1].values()), None)
    return spend_json(None, any_pool["currency"] if any_pool else "USD")


def _budget_warning(pool: dict[str, Any], warnings: list[dict[str, Any]]) -> None:
    budget = (pool.get("cost") or {}).get("budget")
    if not budget or not budget["warn"]:
        return
    cost = pool["cost"]
    spent = f"{cost['day']:.2f} today, {cost['month']:.2f} this month ({cost['currency']}, estimated)"
    if budget["spent"]:
        action = "; its key is withdrawn until the period ends" if budget["stop"] else ""
        warnings.append(_warning("budget_reached", "error", f"pool {pool['name']} spent its {budget['period']} "
                                 f"budget: {spent}{action}", pool=pool["name"]))
    else:
        warnings.append(_warning("budget_warning", "warning", f"pool {pool['name']} is at "
                                 f"{budget['fraction'] * 100:.0f}% of its {budget['period']} budget: {spent}",
                                 pool=pool["name"]))


# The prefix of the meta rows each process describes itself in (keyward.leadership.INSTANCE_PREFIX;
# not imported from there, because the leadership package imports the ORM that status does without).
INSTANCE_PREFIX = "instance."


def _members(conn) -> tuple[list[dict[str, Any]], tuple[str, int, datetime] | None]:
    """The daemons' instance rows, newest heartbeat first (as leadership.instances reads them), and
    the leader lease as (holder, epoch, expires_at)."""
    from keyward.storage import read_queries as rq

    row = rq.lease(conn, LEADER_LEASE)
    lease = None if row is None else (row.holder, row.epoch, row.expires_at)
    members = []
    for _name, value, updated_at in rq.meta_rows(conn, INSTANCE_PREFIX):
        try:
            info = json.loads(value)
        except ValueError:
            continue
        if isinstance(info, dict):
            info["updated_at"] = updated_at
            members.append(info)
    members.sort(key=lambda i: i["updated_at"], reverse=True)
    return [i for i in members if i.get("kind") == "daemon"], lease


def _hosts(members: list[dict[str, Any]], lease, now: datetime,
           warnings: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The daemons heard from in the last hour and the leader lease, as status shows them."""
    held = lease is not None and lease[2] > now
    hosts = []
    for info in members:
        at = info["updated_at"]
        if now - at > timedelta(hours=1):
            continue
        leads = held and lease[0] == info.get("id")
        role = "stopped" if info.get("stopped_at") else ("leader" if leads else "follower")
        hosts.append({"instance_id": info.get("id"), "host": info.get("host"), "pid": info.get("pid"),
                      "version": info.get("version"), "role": role, "started_at": info.get("started_at"),
                      "heartbeat_at": iso(at), "heartbeat_age_s": int((now - at).total_seconds()),
                      "lease_expires_at": iso(lease[2]) if leads else None})
    hosts.sort(key=lambda h: ({"leader": 0, "follower": 1}.get(h["role"], 2), h["host"] or ""))
    if not held:
        live = [h for h in hosts if h["role"] != "stopped"]
        warnings.append(_warning("no_leader", "error" if live else "warning",
                                 "no daemon holds the leader lease: nothing rotates keys or polls Google"
                                 + (f" until one of {len(live)} running daemon(s) takes it over"
                                    if live else " (no daemon is running)")))
    lease_out = None if lease is None else {"holder": lease[0], "epoch": lease[1],
                                            "expires_at": iso(lease[2]), "held": held}
    return hosts, lease_out


def _secrets_at_rest(keys, warnings: list[dict[str, Any]]) -> dict[str, Any]:
    by_master: dict[str, int] = {}
    plain = 0
    for k in keys:
        if k.has_secret and k.sealed_by is None:
            plain += 1
        elif k.has_secret:
            by_master[k.sealed_by] = by_master.get(k.sealed_by, 0) + 1
    if plain:
        hint = ("seal them with `keyward db encrypt`" if by_master else
                "create a master key with `keyward db master-key init`, then run `keyward db encrypt`")
        warnings.append(_warning("secrets_plain", "warning",
                                 f"{plain} key string(s) are stored in plain text in the database: {hint}"))
    return {"sealed": sum(by_master.values()), "plain": plain, "master_keys": by_master}


def _subject(e) -> tuple[str, str | None]:
    """What an error is about: its pool for selection and publishing, else its project."""
    return ("pool", e.pool) if e.kind.startswith(_BY_POOL) else ("project", e.project_id)


def _resolved(conn, errors: list) -> set[int]:
    """The ids of `errors` that a later event of a RESOLVED_BY kind, on the same subject, undid."""
    from keyward.storage import read_queries as rq

    known = [e for e in errors if e.kind in RESOLVED_BY]
    if not known:
        return set()
    kinds = {k for e in known for k in RESOLVED_BY[e.kind]}
    latest: dict[tuple[str, str, str | None], int] = {}
    for later in rq.events_after(conn, min(e.id for e in known), sorted(kinds)):
        if later.level != "error":
            latest[(later.kind, "pool", later.pool)] = later.id
            latest[(later.kind, "project", later.project_id)] = later.id
    return {e.id for e in known
            if any(latest.get((kind, *_subject(e)), 0) > e.id for kind in RESOLVED_BY[e.kind])}


def _event(e, resolved: bool = False) -> dict[str, Any]:
    return {"at": iso(e.at), "kind": e.kind, "message": redact(e.message), "pool": e.pool,
            "project_id": e.project_id, "key_id": e.key_id, "resolved": resolved}


def _warning(code: str, level: str, message: str, *, pool: str | None = None, project_id: str | None = None,
             key_id: str | None = None) -> dict[str, Any]:
    return {"code": code, "level": level, "message": message, "pool": pool, "project_id": project_id,
            "key_id": key_id}


def _describe(pool: str, sink_cfg) -> str:
    from keyward.errors import KeywardError
    from keyward.sinks import build_sink

    try:
        return build_sink(pool, sink_cfg.type, dict(sink_cfg.options)).describe()
    except KeywardError as exc:
        return f"{sink_cfg.type} (misconfigured: {exc})"


def _daemon(ctx: "Context", beat, now: datetime, warnings: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(("pid", "host", "version", "started_at", "heartbeat_at",
                                         "heartbeat_age_s", "stopped_at"))
    out.update(running=False, stale=False)
    if beat is None:
        warnings.append(_warning("daemon_not_running", "error",
                                 "no daemon heartbeat recorded: the daemon is not running "
                                 "(start it: `keyward run`, or `systemctl start keyward`)"))
        return out
    value, at = beat
    try:
        info = json.loads(value)
    except ValueError:
        info = {}
    if not isinstance(info, dict):
        info = {}
    age = (now - at).total_seconds()
    limit = 3 * ctx.config.daemon.heartbeat.total_seconds()
    out.update({name: info.get(name) for name in ("pid", "host", "version", "started_at", "stopped_at")},
               heartbeat_at=iso(at), heartbeat_age_s=int(age))
    if out["stopped_at"]:
        warnings.append(_warning("daemon_not_running", "error",
                                 f"the daemon stopped at {out['stopped_at']}: nothing rotates or follows "
                                 "quota until it runs again (`keyward run`, or `systemctl start keyward`)"))
        return out
    out["stale"] = age > limit
    out["running"] = not out["stale"]
    if out["stale"]:
        warnings.append(_warning("daemon_stale", "error",
                                 f"the daemon's last heartbeat is {int(age)}s old (expected every "
                                 f"{int(limit / 3)}s): it stopped or is stuck (pid {info.get('pid')} on "
                                 f"{info.get('host')})"))
    return out


def _pool_warnings(pool, has_active: bool, warnings: list[dict[str, Any]]) -> None:
    if pool.all_exhausted:
        warnings.append(_warning("all_exhausted", "error",
                                 f"every project of pool {pool.name} is out of quota; the least-bad key "
                                 f"stays published ({pool.current_reason})", pool=pool.name,
                                 key_id=pool.current_key_id))
    if not has_active or (pool.current_reason or "").startswith("no usable key"):
        warnings.append(_warning("no_key", "error",
                                 f"pool {pool.name} has no usable active key" +
                                 (f"; {pool.current_key_id} stays published" if pool.current_key_id else
                                  ": add one with `keyward key add`"), pool=pool.name))
    elif pool.current_key_id is None:
        warnings.append(_warning("not_published", "warning",
                                 f"pool {pool.name} has not published a key yet: the daemon does so "
                                 "within selection.interval (or run `keyward run --once`)", pool=pool.name))
    elif pool.published_key_id != pool.current_key_id:
        warnings.append(_warning("not_published", "warning",
                                 f"pool {pool.name}: key {pool.current_key_id} is chosen but not every "
                                 "sink holds it yet (retried on every pass)", pool=pool.name,
                                 key_id=pool.current_key_id))


def _limit(value: int | None) -> int | None:
    return None if value is None or value < 0 else value


class _Window:
    """What every project's figures are counted against at `now`, worked out once per status."""

    def __init__(self, now: datetime):
        self.now = now
        # usage_at's RPM/TPM window: the current minute and the previous one, up to now
        self.minute_start = minute_floor(now) - timedelta(minutes=1)
        self.day = pacific_date(now)
        self.day_iso = self.day.isoformat()
        self.rpd_reset_at = iso(next_pacific_midnight(now))

    def minutes(self, p) -> tuple[int, int]:
        """(requests, input tokens) of the summary's two minutes that fall in the window; one minute
        stored twice counts once, as the buckets merge it."""
        rpm = tpm = 0
        if p.minute is not None and self.minute_start <= p.minute <= self.now:
            rpm, tpm = p.requests, p.tokens
        if p.prev_minute is not None and self.minute_start <= p.prev_minute <= self.now:
            if p.prev_minute == p.minute:
                rpm, tpm = max(rpm, p.prev_requests), max(tpm, p.prev_tokens)
            else:
                rpm, tpm = rpm + p.prev_requests, tpm + p.prev_tokens
        return rpm, tpm


def _project(p, keys: list, current_ids: set[str], window: _Window,
             warnings: list[dict[str, Any]]) -> dict[str, Any]:
    """One project's entry, from its `read_queries.status_projects` row: the same figures as
    `keyward.usage.loads.pool_loads` gives from the minute buckets (tests hold the two together)."""
    now = window.now
    rpm, tpm = window.minutes(p)
    usage = Usage(rpm=rpm, tpm=tpm, rpd=p.day_requests if p.day == window.day else 0)
    if p.limit_source is not None:  # the pool model's own limits win over those for every model
        limits, limit_source = Limits(p.rpm, p.tpm, p.rpd), p.limit_source
    elif p.any_source is not None:
        limits, limit_source = Limits(p.any_rpm, p.any_tpm, p.any_rpd), p.any_source
    else:
        limits, limit_source = Limits(None, None, None), None
    fraction = load(usage, limits)
    no_quota = fraction is not None and math.isinf(fraction)
    exhausted_until = p.exhausted_until
    out = {
        "project_id": p.project_id,
        "pool": p.pool_name,
        "model": p.pool_model,
        "managed": bool(p.managed),
        "usage": {"rpm": {"used": usage.rpm, "limit": _limit(limits.rpm)},
                  "tpm": {"used": usage.tpm, "limit": _limit(limits.tpm)},
                  "rpd": {"used": usage.rpd, "limit": _limit(limits.rpd)}},
        "limit_source": limit_source,
        "load": None if fraction is None or no_quota else round(fraction, 4),
        "no_quota": no_quota,
        "pacific_day": window.day_iso,
        "rpd_reset_at": window.rpd_reset_at,
        "exhausted": exhausted_until is not None and exhausted_until > now,
        "exhausted_until": iso(exhausted_until),
        "exhausted_scope": p.exhausted_scope,
        "rotation": {"failures": p.rotation_failures or 0, "backoff_until": iso(p.rotation_backoff_until)},
        "keys": [_key(k, k.key_id in current_ids, now, warnings) for k in keys],
    }
    if p.rotation_failures:
        warnings.append(_warning("rotation_failing", "warning",
                                 f"rotation of {p.project_id} failed {p.rotation_failures} time(s); next try "
                                 f"{iso(p.rotation_backoff_until) or 'on the next check'}",
                                 project_id=p.project_id))
    return out


def _key(k, current: bool, now: datetime, warnings: list[dict[str, Any]]) -> dict[str, Any]:
    project_id = k.project_id
    if k.state == "active" and k.rotate_after is not None and k.rotate_after < now:
        warnings.append(_warning("rotation_overdue", "warning",
                                 f"key {k.key_id} of {project_id} is past its rotation time "
                                 f"({iso(k.rotate_after)})" + ("" if k.managed else
                                                               ": add a new key with `keyward key add`"),
                                 project_id=project_id, key_id=k.key_id))
    if k.kind == "standard" and k.state != "invalid":
        warnings.append(_warning("standard_key", "warning",
                                 f"key {k.key_id} of {project_id} is a standard (AIza) key: Gemini rejects "
                                 "those since September 2026, so it is never published; replace it "
                                 "with an auth key",
                                 project_id=project_id, key_id=k.key_id))
    if k.state == "invalid":
        warnings.append(_warning("invalid_key", "error",
                                 f"key {k.key_id} of {project_id} was rejected by Gemini"
                                 + (f": {redact(k.invalid_reason)}" if k.invalid_reason else ""),
                                 project_id=project_id, key_id=k.key_id))
    return {
        "key_id": k.key_id,
        "kind": k.kind,
        "state": k.state,
        "origin": k.origin,
        "masked": k.masked,
        "current": current,
        "created_at": iso(k.created_at),
        "age_s": int((now - k.created_at).total_seconds()),
        "rotate_after": iso(k.rotate_after),
        "grace_until": iso(k.grace_until),
        "invalid_reason": redact(k.invalid_reason) if k.invalid_reason else None,
    }
