"""`keyward alerts check`: evaluate the alert conditions once and run the hook for changes (for a
timer or cron job that must notice a daemon that is not running)."""

from __future__ import annotations

import click

from keyward.cli.app import pass_invocation


@click.group("alerts")
def alerts() -> None:
    """Event hooks for exhaustion, failing rotations, invalid keys, budgets and a stale daemon."""


@alerts.command("check")
@pass_invocation
def check(inv) -> None:
    """Run the [alerts] command for every condition that started or ended since the last check."""
    from keyward import alerts as event_hooks
    from keyward.errors import UsageError

    ctx = inv.context()
    if ctx.config.alerts is None:
        raise UsageError("no [alerts] table in the configuration: nothing to check")
    ran = event_hooks.check(ctx)
    for state, event in ran:
        click.echo(f"{state}: {event.event} {event.ident}: {event.message}")
    if not ran:
        click.echo("no change")
