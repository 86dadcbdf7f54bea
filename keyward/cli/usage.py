"""`keyward report …` and `keyward usage poll|prune|limits`: usage in, counts kept tidy.

`report` delivers through the daemon's ingest socket when it answers, else writes the database
itself. A key string is read only from stdin (`--key-stdin`), never from the command line, where
`ps` and shell history would show it.
"""

from __future__ import annotations

import sys

import click

from keyward.cli.app import Invocation, pass_invocation
from keyward.cli.render import table
from keyward.errors import PassFailed, UsageError
from keyward.usage.reports import MAX_REQUESTS, MAX_TOKENS


MAX_ERROR_FILE = 1 << 20


def _read_error_file(name: str) -> object:
    """Return Google's error body in FILE ('-' for stdin), read by the client library's own reader;
    raise UsageError naming the file when it is not a Google error body."""
    from keyward.quota.signals import google_error, read_body

    label = "stdin" if name == "-" else name
    try:
        if name == "-":
            data = sys.stdin.buffer.read(MAX_ERROR_FILE + 1)
        else:
            with open(name, "rb") as fh:
                data = fh.read(MAX_ERROR_FILE + 1)
    except OSError as exc:
        raise UsageError(f"--from-error {label}: cannot read it: {exc.strerror}") from None
    if len(data) > MAX_ERROR_FILE:
        raise UsageError(f"--from-error {label}: larger than {MAX_ERROR_FILE} bytes; "
                         "an error body from Google is a few KB")
    body = read_body(data)
    if isinstance(body, str):
        raise UsageError(f"--from-error {label}: not valid JSON (or not UTF-8, or nested too deeply)")
    if google_error(body) is None:
        raise UsageError(f'--from-error {label}: valid JSON but not a Google error body '
                         '(expected {"error": {"code": …, "status": …, "message": …}})')
    return body


def _read_key(stdin_text: str) -> str:
    secret = stdin_text.strip()
    if not secret or len(secret.split()) != 1:
        raise UsageError("--key-stdin: expected one key string on stdin")
    return secret


@click.command("report")
@click.option("--pool", help="The pool whose key was used (default: the key's own pool).")
@click.option("--model", help="The model called (default: the pool's model).")
@click.option("--requests", type=click.IntRange(0, MAX_REQUESTS), help="Requests made (default 1).")
@click.option("--input-tokens", type=click.IntRange(0, MAX_TOKENS), default=0, help="Input tokens spent.")
@click.option("--output-tokens", type=click.IntRange(0, MAX_TOKENS), default=0, help="Output tokens spent.")
@click.option("--exhausted", is_flag=True, help="Say the project ran out of quota (a 429).")
@click.option("--retry-after", metavar="DELAY", default="60s", show_default=True,
              help="With --exhausted: how long Google asked to wait (26s, 1m30s).")
@click.option("--per-day", is_flag=True, help="With --exhausted: the daily quota ran out.")
@click.option("--from-error", "error_file", metavar="FILE",
              help="Google's error body as it came ('-' for stdin).")
@click.option("--status", "http_status", type=click.IntRange(100, 599),
              help="With --from-error: the HTTP status (default: the body's error.code, else 429).")
@click.option("--key-id", help="The key used, by keyward's key id.")
@click.option("--key-stdin", is_flag=True, help="Read the key string used from stdin.")
@pass_invocation
def report(inv: Invocation, pool: str | None, model: str | None, requests: int | None,
           input_tokens: int, output_tokens: int, exhausted: bool, retry_after: str,
           per_day: bool, error_file: str | None, http_status: int | None, key_id: str | None,
           key_stdin: bool) -> None:
    """Report usage of a key, or a quota error, so keyward counts it and switches keys in time."""
    from keyward.quota.signals import parse_retry_delay
    from keyward.usage.reports import ErrorReport, UsageReport, quota_error_body
    from keyward.usage.reporter import send_reports

    if exhausted and error_file:
        raise UsageError("--exhausted and --from-error cannot be combined")
    if key_stdin and key_id:
        raise UsageError("--key-id and --key-stdin cannot be combined")
    if key_stdin and error_file == "-":
        raise UsageError("--key-stdin and --from-error - both need stdin; put the body in a file")
    counted = requests is not None or input_tokens or output_tokens
    if (exhausted or error_file) and counted:
        raise UsageError("--requests/--input-tokens/--output-tokens go in a separate report")
    key = _read_key(sys.stdin.read(4096)) if key_stdin else None  # a key is < 600 characters
    if exhausted:
        try:
            delay = parse_retry_delay(retry_after).total_seconds()
        except ValueError as exc:
            raise UsageError(f"--retry-after {retry_after!r}: {exc}") from None
        body = quota_error_body(delay, model=model, per_day=per_day)
        item = ErrorReport(429, body, pool, key, key_id, model)
    elif error_file:
        from keyward.quota.signals import body_status

        body = _read_error_file(error_file)
        status = http_status or body_status(body) or 429
        item = ErrorReport(status, body, pool, key, key_id, model)
    else:
        item = UsageReport(pool, key, key_id, model, 1 if requests is None else requests,
                           input_tokens, output_tokens)
    ctx = inv.context()
    reply = send_reports([item], config=ctx.config, context=lambda: ctx)
    if isinstance(item, UsageReport):
        click.echo(f"recorded {item.requests} request(s), {item.input_tokens} input and "
                   f"{item.output_tokens} output token(s) (via the {reply['via']})")
    elif reply.get("via") == "spool":
        click.echo("no daemon answered and the database cannot be written: the report is spooled and "
                   "delivered with the next one that gets through")
    else:
        for result in reply.get("results") or []:
            click.echo(f"recorded {result['kind']} for key {result['key_id']}: {result['reason']}")


@click.group()
def usage() -> None:
    """Poll Cloud Monitoring, refresh limits and prune usage records."""


@usage.command("poll")
@click.option("--project", "projects", multiple=True, help="Poll only this project (repeatable).")
@pass_invocation
def usage_poll(inv: Invocation, projects: tuple[str, ...]) -> None:
    """Read Cloud Monitoring now and merge its counts with local reports."""
    from keyward.usage.accounting import poll_monitoring

    summary = poll_monitoring(inv.context(), projects=list(projects) or None, force=True)
    rows = [(pid, p.minutes, p.requests, ", ".join(f"{k}={n}" for k, n in sorted(p.by_key.items())))
            for pid, p in sorted(summary.projects.items())]
    if rows:
        click.echo(table(["PROJECT", "MINUTES", "REQUESTS", "BY KEY"], rows))
    if summary.alone:
        shown = ", ".join(summary.alone[:10]) + (f" and {len(summary.alone) - 10} more"
                                                 if len(summary.alone) > 10 else "")
        click.echo(f"{len(summary.alone)} project(s) in no listed metrics scope (or without a "
                   f"project number) were read one by one: {shown}", err=True)
    if summary.failures:
        raise PassFailed(summary.failures)


@usage.command("limits")
@pass_invocation
def usage_limits(inv: Invocation) -> None:
    """Ask Google (Service Usage) for the limits of projects the config gives none."""
    from keyward.usage.accounting import refresh_limits

    outcome = refresh_limits(inv.context())
    for project_id, what in sorted(outcome.items()):
        click.echo(f"{project_id}: {what}")
    failures = {p: w for p, w in outcome.items() if w.startswith("failed")}
    if failures:
        raise PassFailed(failures)


@usage.command("prune")
@pass_invocation
def usage_prune(inv: Invocation) -> None:
    """Delete minute counts past usage.minute_retention and day counts past usage.day_retention."""
    from keyward.usage.accounting import prune

    counts = prune(inv.context())
    click.echo(f"pruned {counts['minutes']} minute row(s), {counts['days']} day row(s), "
               f"{counts['exhaustion']} ended exhaustion(s)")


@usage.command("clear-exhaustion")
@click.option("--project", "projects", multiple=True, help="Clear this project (repeatable).")
@click.option("--pool", help="Clear every project of this pool.")
@click.option("--all", "everything", is_flag=True, help="Clear every project.")
@pass_invocation
def usage_clear_exhaustion(inv: Invocation, projects: tuple[str, ...], pool: str | None,
                           everything: bool) -> None:
    """Put exhausted projects back in use now (after a wrong or forged quota report)."""
    from keyward.usage.exhaustion import clear_exhaustion

    cleared = clear_exhaustion(inv.context(), projects=list(projects) or None, pool=pool,
                               everything=everything)
    for project_id, model, _pool in cleared:
        click.echo(f"cleared: {project_id} ({model})")
    click.echo(f"{len(cleared)} exhaustion(s) cleared")
