"""The status screen: `keyward status` without --json, and the redraw loop of --watch.

`render` turns the dict of `keyward.status.build_status` into text: per pool a header with the
current key and why it was chosen, one block per project with a bar per limit, the keys table, and
the warnings last, where the eye ends. It reads only the dict, so what the text says and what
`--json` says never disagree.

Past `SUMMARY_THRESHOLD` projects a screen of every project is thousands of lines nobody reads, so
the screen summarises: per pool the counts of projects by state and the `top` most loaded ones (the
current one always among them), and only the keys that are current or need attention, with counts
of the rest. `--all` prints everything.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any, Callable

from keyward.cli.render import span, table

BAR_WIDTH = 10
RED, YELLOW, GREEN, BOLD, RESET = "\x1b[31m", "\x1b[33m", "\x1b[32m", "\x1b[1m", "\x1b[0m"
CLEAR = "\x1b[H\x1b[2J"
SUMMARY_THRESHOLD = 30
TOP_DEFAULT = 10


def _t(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _clock(value: str | None, now: datetime, *, seconds: bool = False) -> str:
    ts = _t(value)
    if ts is None:
        return "-"
    time_fmt = "%H:%M:%S" if seconds else "%H:%M"
    fmt = f"{time_fmt} UTC" if ts.date() == now.astimezone(timezone.utc).date() else f"%Y-%m-%d {time_fmt} UTC"
    return ts.strftime(fmt)


def _in(value: str | None, now: datetime) -> str:
    ts = _t(value)
    if ts is None:
        return "-"
    delta = ts - now
    return f"in {span(delta)}" if delta.total_seconds() >= 0 else f"{span(-delta)} ago"


def _ago(value: str | None, now: datetime) -> str:
    ts = _t(value)
    return "-" if ts is None else span(max(now - ts, now - now))


def bar(name: str, used: int, limit: int | None) -> str:
    """`RPM [#####.....] 5/10`; without a known limit `RPM 5 (no limit known)`."""
    if limit is None:
        return f"{name} {used} (no limit known)"
    filled = BAR_WIDTH if limit == 0 else min(BAR_WIDTH, round(BAR_WIDTH * used / limit))
    return f"{name} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {used}/{limit}"


class _Paint:
    def __init__(self, color: bool):
        self.color = color

    def __call__(self, text: str, code: str) -> str:
        return f"{code}{text}{RESET}" if self.color else text


def render(status: dict[str, Any], now: datetime, color: bool = False, top: int | None = None) -> str:
    """Return the status screen for `status` (a build_status dict) as seen at `now`.

    With `top` set and more than SUMMARY_THRESHOLD projects, summarise (see the module docstring);
    with `top` None list every project and key.
    """
    paint = _Paint(color)
    summary = top is not None and len(status["projects"]) > SUMMARY_THRESHOLD
    lines = [paint(f"keyward status at {now.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC", BOLD)]
    d = status["daemon"]
    if d["running"]:
        lines.append(f"daemon: running (pid {d['pid']} on {d['host']}, keyward {d['version']}, "
                     f"heartbeat {d['heartbeat_age_s']}s ago)")
    elif d["stale"]:
        lines.append(paint(f"daemon: NOT RESPONDING (last heartbeat {d['heartbeat_age_s']}s ago, "
                           f"pid {d['pid']} on {d['host']})", RED))
    elif d.get("stopped_at"):
        lines.append(paint(f"daemon: NOT RUNNING (stopped cleanly at {d['stopped_at']})", RED))
    else:
        lines.append(paint("daemon: NOT RUNNING", RED))
    hosts = status.get("hosts") or []
    if len(hosts) > 1 or any(h["role"] == "follower" for h in hosts):
        lines += ["", paint("HOSTS", BOLD), table(
            ["HOST", "PID", "VERSION", "ROLE", "HEARTBEAT", "LEASE UNTIL", "INSTANCE"],
            [(h["host"], h["pid"], h["version"], h["role"], f"{h['heartbeat_age_s']}s ago",
              _clock(h["lease_expires_at"], now) if h["lease_expires_at"] else "",
              h["instance_id"]) for h in hosts])]
    projects = {p["project_id"]: p for p in status["projects"]}
    for pool in status["pools"]:
        lines += [""] + _pool(pool, projects, now, paint, top if summary else None)
    keys = [(p["project_id"], k) for p in status["projects"] for k in p["keys"]]
    if summary and keys:
        lines += ["", paint("KEYS", BOLD) + "  " + _key_counts(k for _pid, k in keys)]
        keys = [(pid, k) for pid, k in keys if _notable(k, now)]
        if keys:
            lines.append("  current keys and keys needing attention (all of them: --all):")
    if keys:
        lines += ["", paint("KEYS", BOLD), table(
            ["PROJECT", "KEY ID", "KIND", "STATE", "KEY", "AGE", "ROTATE", "GRACE UNTIL", ""],
            [(pid, k["key_id"], k["kind"], k["state"], k["masked"], span_s(k["age_s"]),
              _in(k["rotate_after"], now), _clock(k["grace_until"], now), "current" if k["current"] else "")
             for pid, k in keys])]
    if status["warnings"]:
        lines += ["", paint(f"WARNINGS ({len(status['warnings'])})", BOLD)]
        for w in status["warnings"]:
            mark = paint("error:", RED) if w["level"] == "error" else paint("warning:", YELLOW)
            lines.append(f"  {mark} {w['message']}")
    else:
        lines += ["", paint("no warnings", GREEN)]
    return "\n".join(lines) + "\n"


def span_s(seconds: int) -> str:
    from datetime import timedelta

    return span(timedelta(seconds=seconds))


def _pool(pool: dict[str, Any], projects: dict[str, Any], now: datetime, paint: _Paint,
          top: int | None = None) -> list[str]:
    out = [paint(f"POOL {pool['name']}", BOLD) + f"  model {pool['model']}  margin {pool['margin'] * 100:.0f}%"]
    cur = pool["current"]
    if cur is None:
        out.append(paint("  current: none published", RED))
    else:
        out.append(f"  current: {cur['key_id']} {cur['masked'] or '-'} of {cur['project_id'] or '-'} "
                   f"since {_clock(cur['since'], now)} ({_ago(cur['since'], now)})")
        out.append(f"  why: {cur['reason']}")
    if pool["all_exhausted"]:
        out.append(paint("  ALL PROJECTS EXHAUSTED: the least-bad key stays published", RED))
    out.append("  sinks: " + ("; ".join(pool["sinks"]) or "none"))
    if pool.get("cost"):
        out.append("  spend: " + _spend(pool["cost"]) + _budget(pool["cost"].get("budget"), paint))
    members = [projects[pid] for pid in pool["projects"] if pid in projects]
    if top is not None:
        return out + _pool_summary(members, cur, now, paint, top)
    for p in members:
        out += _project(p, cur, now, paint)
    return out


def _project_state(p: dict[str, Any]) -> str:
    if p["exhausted"]:
        return "exhausted"
    if p["no_quota"]:
        return "no quota"
    if p["load"] is None:
        return "no limits known"
    return "over 80%" if p["load"] >= 0.8 else "available"


def _counts(values) -> str:
    counted: dict[str, int] = {}
    for value in values:
        counted[value] = counted.get(value, 0) + 1
    return ", ".join(f"{n:,} {name}" for name, n in sorted(counted.items(), key=lambda kv: (-kv[1], kv[0])))


def _pool_summary(members: list[dict[str, Any]], cur: dict[str, Any] | None, now: datetime, paint: _Paint,
                  top: int) -> list[str]:
    """Counts by state, then the `top` most loaded projects (exhausted first), the current one always."""
    out = [f"  projects: {len(members):,}" + (f" ({_counts(_project_state(p) for p in members)})" if members else "")]
    ranked = sorted(members, key=lambda p: (not p["exhausted"], -(p["load"] or 0.0), p["project_id"]))
    shown = ranked[:top]
    current = cur["project_id"] if cur else None
    if current and all(p["project_id"] != current for p in shown):
        shown += [p for p in members if p["project_id"] == current]
    if shown:
        out.append(f"  most loaded {min(top, len(ranked))}" + (", and the current one:" if len(shown) > top else ":"))
    for p in shown:
        out += _project(p, cur, now, paint)
    hidden = len(members) - len(shown)
    if hidden > 0:
        out.append(f"  … {hidden:,} more project(s) (all of them: keyward status --all)")
    return out


def _key_counts(keys) -> str:
    return _counts(k["state"] for k in keys)


def _notable(k: dict[str, Any], now: datetime) -> bool:
    """A key an operator must see in a summary: current, not active, standard, or overdue."""
    overdue = k["rotate_after"] is not None and _t(k["rotate_after"]) < now
    return k["current"] or k["state"] != "active" or k["kind"] == "standard" or overdue


def _project(p: dict[str, Any], cur: dict[str, Any] | None, now: datetime, paint: _Paint) -> list[str]:
    mark = "*" if cur and cur["project_id"] == p["project_id"] else " "
    load = "no quota for the model" if p["no_quota"] else (
        "load -" if p["load"] is None else f"load {p['load'] * 100:.0f}%")
    source = f"limits from {p['limit_source']}" if p["limit_source"] else "no limits known"
    head = f"  {mark} {p['project_id']}  {load}  ({source}{', managed' if p['managed'] else ''})"
    u = p["usage"]
    bars = "      " + "  ".join(bar(n.upper(), u[n]["used"], u[n]["limit"]) for n in ("rpm", "tpm", "rpd"))
    bars += f"  day resets {_in(p['rpd_reset_at'], now)}"
    out = [head, bars]
    if p.get("cost"):
        out.append("      spend: " + _spend(p["cost"]))
    if p["exhausted"]:
        # to the second: a per-minute quota frees within the minute the clock would show
        out.append(paint(f"      exhausted until {_clock(p['exhausted_until'], now, seconds=True)} "
                         f"({p['exhausted_scope']})", YELLOW))
    return out


def _spend(cost: dict[str, Any]) -> str:
    text = f"~{cost['day']:.2f} {cost['currency']} today (Pacific), ~{cost['month']:.2f} this month"
    if cost.get("unpriced_models"):
        text += f"; no price for {', '.join(cost['unpriced_models'])}"
    return text


def _budget(budget: dict[str, Any] | None, paint: _Paint) -> str:
    if not budget or budget["fraction"] is None:
        return ""
    text = f"  budget {budget['fraction'] * 100:.0f}% of {budget['period']}"
    if budget["spent"]:
        return paint(text + (" SPENT, key withdrawn" if budget["stop"] else " SPENT"), RED)
    return paint(text, YELLOW) if budget["warn"] else text


def _echo_raw(text: str) -> None:
    import sys

    # Keep the clear-screen codes; the frame has color only if asked for.
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def use_color(flag: bool | None, stream=None) -> bool:
    """--color/--no-color when given; else color only on a terminal and only without $NO_COLOR
    (no-color.org: set to anything but the empty string)."""
    import os
    import sys

    if flag is not None:
        return flag
    stream = sys.stdout if stream is None else stream
    return not os.environ.get("NO_COLOR") and stream.isatty()


def watch(draw: Callable[[], str], interval: float, *, iterations: int | None = None,
          echo: Callable[[str], None] = _echo_raw, sleep: Callable[[float], None] = time.sleep,
          clear: bool = True) -> None:
    """Draw every `interval` seconds until Ctrl-C (or `iterations` draws): on a terminal
    (`clear`) over the last frame; elsewhere (a pipe, a file) one plain frame after another,
    separated by a blank line, without escape codes."""
    count = 0
    try:
        while iterations is None or count < iterations:
            frame = draw()
            echo(CLEAR + frame if clear else ("\n" if count else "") + frame)
            count += 1
            if iterations is None or count < iterations:
                sleep(interval)
    except KeyboardInterrupt:
        pass


def screen(text: str, color: bool, top: int | None = TOP_DEFAULT) -> str:
    """Render the status JSON text as the screen, as of the moment it was generated."""
    data = json.loads(text)
    return render(data, datetime.fromisoformat(data["generated_at"]), color=color, top=top).rstrip("\n")


def from_daemon(config_path: str | None) -> str | None:
    """The running daemon's status JSON, or None when none answers."""
    from keyward.published import light_config
    from keyward.status_socket import fetch

    found = light_config(config_path)
    return None if found is None else fetch(found[1])


EXIT_ERRORS_SHOWN = 1  # `keyward status --check` when the status shows an error


def shows_error(text: str) -> bool:
    """Whether the status JSON `text` holds an error-level warning (what --check exits 1 for)."""
    return any(w.get("level") == "error" for w in json.loads(text).get("warnings", []))


def _built_here(config_path: str | None) -> tuple[str | None, int]:
    """The status JSON built from the database, as `keyward status` does through click when no
    daemon answers; or (None, exit code) after reporting why it could not be built."""
    import logging
    import os
    import sys

    from keyward.cli.messages import error_line

    # as click's --config option takes it, so errors name it the same way on both paths
    config_path = config_path or os.environ.get("KEYWARD_CONFIG") or None

    if not logging.getLogger().handlers:
        from keyward.log import setup_logging

        setup_logging("warning", stream=sys.stderr)
    try:
        from keyward.context import Context
        from keyward.status_socket import status_text

        with Context.load(config_path) as ctx:
            return status_text(ctx), 0
    except KeyboardInterrupt:
        sys.stderr.write("keyward: interrupted\n")
        return None, 130
    except Exception as exc:
        line, code = error_line(exc)
        sys.stderr.write(line + "\n")
        return None, code


def fast_main(args: list[str], config_path: str | None = None) -> int | None:
    """`keyward status [--json] [--pretty] [--all] [--color|--no-color] [--check] [--config FILE]`
    without importing click: answered by the daemon, else built here from the database. Return the
    exit code; None = the slow path (other options)."""
    import sys

    rest = list(args)
    if "--config" in rest:
        at = rest.index("--config")
        if at + 1 >= len(rest):
            return None
        config_path = rest[at + 1]
        del rest[at:at + 2]
    for arg in [a for a in rest if a.startswith("--config=")]:
        config_path = arg.split("=", 1)[1]
        rest.remove(arg)
    if not set(rest) <= {"--json", "--pretty", "--all", "--color", "--no-color", "--check"}:
        return None
    text = from_daemon(config_path)
    if text is None:
        text, failed = _built_here(config_path)
        if text is None:
            return failed
    code = EXIT_ERRORS_SHOWN if "--check" in rest and shows_error(text) else 0
    color = use_color(True if "--color" in rest else False if "--no-color" in rest else None)
    if "--json" in rest:
        if "--pretty" in rest:
            from keyward.status_socket import pretty

            text = pretty(text)
    else:
        text = screen(text, color, top=None if "--all" in rest else TOP_DEFAULT)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    return code
