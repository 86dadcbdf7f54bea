"""`keyward rotate` and `keyward keys sweep`: rotation on demand and reconciling keys at Google."""

from __future__ import annotations

import click

from keyward.cli.app import Invocation, pass_invocation
from keyward.cli.render import table
from keyward.errors import PassFailed, RotationError, UsageError


@click.command()
@click.option("--project", "project_id", help="Rotate this project only.")
@click.option("--all", "all_projects", is_flag=True, help="Rotate every managed project that is due.")
@click.option("--now", "force", is_flag=True, help="Rotate even if the key is not due (and despite backoff).")
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing here or at Google.")
@click.option("--wait", "wait", type=click.FloatRange(0, 3600), default=60, show_default=True,
              metavar="SECONDS", help="How long to wait while another rotation (the daemon's) runs.")
@pass_invocation
def rotate(inv: Invocation, project_id: str | None, all_projects: bool, force: bool, dry_run: bool,
           wait: float) -> None:
    """Rotate the keys of managed projects. Returns once every new key is verified and active;
    exits 1 naming each project that failed (the others still rotate), or naming the daemon or
    command that is rotating when it is still busy after --wait seconds."""
    from contextlib import nullcontext

    from keyward import leadership
    from keyward.rotation import service

    if bool(project_id) == all_projects:
        raise UsageError("name one project with --project ID, or use --all")

    def show(result) -> None:
        click.echo(f"{result.project_id}: {result.status}: {result.message}")
        for warning in result.warnings:
            click.echo(f"{result.project_id}: warning: {warning}", err=True)

    ctx = inv.context()
    try:
        with nullcontext() if dry_run else leadership.rotating(ctx, wait=wait, kind="command"):
            service.rotate_all(ctx, force=force, dry_run=dry_run,
                               projects=[project_id] if project_id else None, on_result=show)
    except PassFailed as exc:  # each failure was printed above with its reason
        raise RotationError(f"{len(exc.failures)} project(s) failed: {', '.join(sorted(exc.failures))}") from None


@click.group()
def keys() -> None:
    """Reconcile keys at Google with the keys keyward knows."""


@keys.command("sweep")
@click.option("--prune", is_flag=True, help="Delete the keys found (default: only list them).")
@pass_invocation
def keys_sweep(inv: Invocation, prune: bool) -> None:
    """List keys keyward created at Google that it no longer knows; delete them with --prune."""
    from keyward.rotation import service

    items = service.sweep(inv.context(), prune=prune)
    found = [i for i in items if i.error is None and i.other_installation is None]
    others = [i for i in items if i.error is None and i.other_installation is not None]
    errors = {i.project_id: i.error for i in items if i.error is not None}
    if found:
        click.echo(table(["PROJECT", "KEY", "KEYWARD STATE", "AT GOOGLE"],
                         [(i.project_id, i.key_id, i.state or "unknown",
                           "deleted" if i.deleted else "live") for i in found]))
        if not prune:
            click.echo(f"{len(found)} key(s) keyward created are unknown to it; delete them with "
                       "`keyward keys sweep --prune`")
    else:
        click.echo("no stray keys at Google")
    if others:
        click.echo("")
        click.echo(table(["PROJECT", "KEY", "INSTALLATION", "AT GOOGLE"],
                         [(i.project_id, i.key_id, i.other_installation, "live") for i in others]))
        click.echo(f"{len(others)} key(s) belong to other keyward installations (another database "
                   "sharing these projects); keyward never deletes them")
    if errors:
        raise PassFailed(errors)
