"""Event hooks: run the operator's command when trouble starts, and again when it ends.

Events come from the same model as `keyward status`, so an alert and the screen never disagree:

    all_exhausted      every project of a pool is out of quota (KEYWARD_UNTIL: when one frees up)
    rotation_failing   a project's rotation failed `rotation_failures` times in a row
    key_invalid        Gemini rejected a key (invalid, unsupported standard key, blocked)
    budget_reached     a pool spent its daily or monthly budget
    daemon_stale       the daemon's heartbeat is too old (it hangs or died without stopping)

Each condition fires once when it appears (KEYWARD_EVENT_STATE=firing) and once when it clears
(`resolved`), not on every check. What already fired is kept in the database (meta row
`alerts.firing`), not on the host: with several hosts sharing one PostgreSQL, only the leader
checks, and a new leader must know what the old one already announced. Delivery is at least once:
the hooks run before the new state is saved, so a crash in between repeats an event rather than
losing it. (STATE_DIR/alerts.json, where earlier versions kept it, is read once and removed.) The command
runs like the post-publish hook (no shell, stdin closed, own process group, timeout, failures
logged at warning with redacted output) with the event's fields in its environment; never a key.

The daemon checks every `alerts.interval`; `keyward alerts check` does the same once, for a timer
or cron job that must notice a daemon that is not running at all.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyward.keystrings import redact

if TYPE_CHECKING:
    from keyward.config.problems import Problems
    from keyward.context import Context

log = logging.getLogger(__name__)

EVENTS = ("all_exhausted", "rotation_failing", "key_invalid", "budget_reached", "daemon_stale")
STATE_FILE = "alerts.json"  # where earlier versions kept the fired alerts, on each host
META_NAME = "alerts.firing"


@dataclass(frozen=True)
class AlertsConfig:
    """`[alerts]`: the command, which events run it, and how often the daemon looks."""

    command: tuple[str, ...]
    events: tuple[str, ...] = EVENTS
    rotation_failures: int = 3
    timeout: timedelta = timedelta(seconds=30)
    interval: timedelta = timedelta(seconds=60)
    resolved: bool = True


def build_alerts(raw: Any, problems: "Problems") -> AlertsConfig | None:
    """Check the `[alerts]` table; record every problem and return None when it is unusable."""
    from keyward.config import values as v
    from keyward.config.problems import did_you_mean
    from keyward.config.sections import check_fields, table_or_none

    def events(value: Any, path, problems) -> Any:
        if not isinstance(value, list) or not value or not all(isinstance(e, str) for e in value):
            problems.add(path, f"expected a list of event names from: {', '.join(EVENTS)}")
            return v.INVALID
        unknown = [e for e in value if e not in EVENTS]
        for name in unknown:
            problems.add(path, did_you_mean(name, EVENTS, "event"))
        if unknown:
            return v.INVALID
        return tuple(dict.fromkeys(value))

    schema = {
        "command": v.argv,
        "events": events,
        "rotation_failures": v.positive_int,
        "timeout": v.duration(timedelta(seconds=1), timedelta(hours=1)),
        "interval": v.duration(timedelta(seconds=10), timedelta(days=1)),
        "resolved": v.boolean,
    }
    table = table_or_none(raw, ("alerts",), problems)
    if table is None:
        return None
    values = check_fields(table, schema, ("alerts",), problems)
    if "command" not in table:
        problems.add(("alerts", "command"), "missing required key 'command': the program to run on an event")
    if len(values) != len(table) or "command" not in values:
        return None
    return AlertsConfig(**values)


@dataclass(frozen=True)
class Event:
    """One condition that holds now; `ident` says which (the same condition keeps its ident)."""

    event: str
    ident: str
    message: str
    pool: str | None = None
    project_id: str | None = None
    key_id: str | None = None
    until: str | None = None
    failures: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def environment(self, state: str) -> dict[str, str]:
        env = {"KEYWARD_EVENT": self.event, "KEYWARD_EVENT_STATE": state, "KEYWARD_EVENT_ID": self.ident,
               "KEYWARD_MESSAGE": redact(self.message), "KEYWARD_HOST": socket.gethostname()}
        for name, value in (("KEYWARD_POOL", self.pool), ("KEYWARD_PROJECT", self.project_id),
                            ("KEYWARD_KEY_ID", self.key_id), ("KEYWARD_UNTIL", self.until),
                            ("KEYWARD_FAILURES", None if self.failures is None else str(self.failures))):
            if value is not None:
                env[name] = value
        return env


def conditions(status: dict[str, Any], config: AlertsConfig) -> dict[str, Event]:
    """Pure: the alert conditions that hold in a status model, by ident, limited to `config.events`."""
    found: list[Event] = []
    projects = {p["project_id"]: p for p in status.get("projects", [])}
    for pool in status.get("pools", []):
        name = pool["name"]
        if pool.get("all_exhausted"):
            untils = [projects[p]["exhausted_until"] for p in pool.get("projects", [])
                      if p in projects and projects[p].get("exhausted_until")]
            until = min(untils) if untils else None
            found.append(Event("all_exhausted", f"all_exhausted:{name}",
                               f"every project of pool {name} is out of quota"
                               + (f" until {until}" if until else ""), pool=name, until=until))
        budget = (pool.get("cost") or {}).get("budget")
        if budget and budget.get("spent"):
            found.append(Event("budget_reached", f"budget_reached:{name}:{budget['period']}",
                               f"pool {name} spent its {budget['period']} budget"
                               + ("; its key is withdrawn" if budget.get("stop") else ""), pool=name))
    for p in projects.values():
        failures = (p.get("rotation") or {}).get("failures") or 0
        if failures >= config.rotation_failures:
            found.append(Event("rotation_failing", f"rotation_failing:{p['project_id']}",
                               f"rotation of {p['project_id']} failed {failures} time(s) in a row",
                               pool=p.get("pool"), project_id=p["project_id"], failures=failures))
        for k in p.get("keys", []):
            if k.get("state") == "invalid":
                found.append(Event("key_invalid", f"key_invalid:{k['key_id']}",
                                   f"key {k['key_id']} of {p['project_id']} was rejected by Gemini"
                                   + (f": {k['invalid_reason']}" if k.get("invalid_reason") else ""),
                                   pool=p.get("pool"), project_id=p["project_id"], key_id=k["key_id"]))
    daemon = status.get("daemon") or {}
    if daemon.get("stale") or (daemon.get("heartbeat_at") and not daemon.get("running")
                               and not daemon.get("stopped_at")):
        found.append(Event("daemon_stale", "daemon_stale",
                           f"the keyward daemon's heartbeat is {daemon.get('heartbeat_age_s')}s old "
                           f"(pid {daemon.get('pid')} on {daemon.get('host')})"))
    return {e.ident: e for e in found if e.event in config.events}


def _legacy_path(ctx: "Context") -> Path:
    return Path(ctx.config.state_dir) / STATE_FILE


def _parse(text: str) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, dict)}


def _load(ctx: "Context") -> dict[str, dict[str, Any]]:
    """What fired and has not resolved: the database's record, else the host file of an older keyward."""
    from keyward.storage import store as q

    with ctx.store.read() as s:
        row = q.get_meta(s, META_NAME)
        if row is not None:
            return _parse(row.value)
    try:
        with open(_legacy_path(ctx), encoding="utf-8") as fh:
            return _parse(fh.read(1 << 20))
    except (OSError, UnicodeDecodeError):
        return {}


def _save(ctx: "Context", firing: dict[str, dict[str, Any]]) -> None:
    from keyward.storage import store as q

    with ctx.store.write() as s:
        q.set_meta(s, META_NAME, json.dumps(firing, sort_keys=True), now=ctx.now())
    try:
        os.unlink(_legacy_path(ctx))
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot remove %s, which the database's record of fired alerts replaces: %s",
                    _legacy_path(ctx), exc)


def check(ctx: "Context", status: dict[str, Any] | None = None) -> list[tuple[str, Event]]:
    """Compare the conditions holding now with those that already fired; run the command for each
    new one (firing) and each one gone (resolved). Return what was run, as (state, event) pairs."""
    cfg: AlertsConfig | None = ctx.config.alerts
    if cfg is None:
        return []
    if status is None:
        from keyward.status import build_status

        status = build_status(ctx)
    now = conditions(status, cfg)
    before = _load(ctx)
    ran: list[tuple[str, Event]] = []
    for ident, event in now.items():
        if ident not in before:
            ran.append(("firing", event))
    for ident, record in before.items():
        if ident not in now and cfg.resolved:
            ran.append(("resolved", Event(record.get("event", "unknown"), ident, record.get("message", ""),
                                          record.get("pool"), record.get("project_id"), record.get("key_id"))))
    from keyward.sinks.hook import run_command

    for state, event in ran:
        log.log(logging.WARNING if state == "firing" else logging.INFO, "alert %s %s: %s", event.event, state,
                redact(event.message))
        run_command(cfg.command, event.environment(state), cfg.timeout.total_seconds(),
                    f"alert hook {os.path.basename(cfg.command[0])} for {event.ident}")
    _save(ctx, {ident: {"event": e.event, "message": e.message, "pool": e.pool, "project_id": e.project_id,
                         "key_id": e.key_id} for ident, e in now.items()})
    return ran
