"""`keyward pool|project|key ...`: the operator's inventory."""

from __future__ import annotations

import sys

import click

from keyward.cli.app import Invocation, pass_invocation
from keyward.cli.render import age, table, until
from keyward.errors import UsageError


@click.group()
def pool() -> None:
    """Add, list and remove pools (a pool publishes one current key)."""


@pool.command("add")
@click.argument("name")
@click.option("--model", default="gemini-2.5-flash", show_default=True,
              help="The Gemini model whose quota decides which key is published.")
@pass_invocation
def pool_add(inv: Invocation, name: str, model: str) -> None:
    """Add a pool NAME."""
    from keyward import inventory

    inventory.add_pool(inv.context(), name, model)
    click.echo(f"pool {name} added (model {model})")


@pool.command("list")
@pass_invocation
def pool_list(inv: Invocation) -> None:
    """List pools."""
    from keyward import inventory

    rows = [(p.name, p.model, p.projects, p.current_key_id, p.origin) for p in inventory.list_pools(inv.context())]
    click.echo(table(["POOL", "MODEL", "PROJECTS", "CURRENT KEY", "FROM"], rows))


@pool.command("remove")
@click.argument("name")
@pass_invocation
def pool_remove(inv: Invocation, name: str) -> None:
    """Forget the pool NAME (it must have no projects); its published files stay."""
    from keyward import inventory

    inventory.remove_pool(inv.context(), name)
    click.echo(f"pool {name} removed")


@click.group()
def project() -> None:
    """Add, list and remove projects."""


@project.command("add")
@click.argument("project_id")
@click.option("--pool", "pool_name", default="default", show_default=True)
@click.option("--number", help="The project number (Google names keys by it).")
@click.option("--managed", is_flag=True, help="keyward may create and delete this project's keys.")
@click.option("--service-account", help="Service account new auth keys are bound to.")
@click.option("--allowed-ip", "allowed_ips", multiple=True, help="Restrict new keys to this IP or CIDR (repeatable).")
@pass_invocation
def project_add(inv: Invocation, project_id: str, pool_name: str, number: str | None, managed: bool,
                service_account: str | None, allowed_ips: tuple[str, ...]) -> None:
    """Add the Google Cloud project PROJECT_ID."""
    from keyward import inventory

    inventory.add_project(inv.context(), project_id, pool=pool_name, number=number, managed=managed,
                          service_account=service_account, allowed_ips=allowed_ips)
    click.echo(f"project {project_id} added to pool {pool_name}")


@project.command("list")
@click.option("--pool", "pool_name")
@pass_invocation
def project_list(inv: Invocation, pool_name: str | None) -> None:
    """List projects."""
    from keyward import inventory

    rows = [(p.project_id, p.number, p.pool, "yes" if p.managed else "no", p.service_account, p.origin)
            for p in inventory.list_projects(inv.context(), pool_name)]
    click.echo(table(["PROJECT", "NUMBER", "POOL", "MANAGED", "SERVICE ACCOUNT", "FROM"], rows))


@project.command("remove")
@click.argument("project_id")
@click.option("--force", is_flag=True, help="Forget it even if keys keyward created are still live at Google.")
@pass_invocation
def project_remove(inv: Invocation, project_id: str, force: bool) -> None:
    """Forget the project PROJECT_ID."""
    from keyward import inventory

    left = inventory.remove_project(inv.context(), project_id, force=force)
    click.echo(f"project {project_id} removed")
    if left:
        click.echo(f"warning: these keys are still live at Google; delete them there: {', '.join(left)}", err=True)


@click.group()
def key() -> None:
    """Add, list and retire keys."""


def _read_secret() -> str:
    """Read a key from stdin or a no-echo prompt: never from argv, where `ps` and shell history see it."""
    if sys.stdin is not None and not sys.stdin.isatty():
        data = sys.stdin.readline()
        if not data.strip():
            raise UsageError("no key on standard input: pipe the key in, e.g. `keyward key add --project P < keyfile`")
        return data.strip()
    return click.prompt("API key", hide_input=True).strip()


@key.command("add")
@click.option("--project", "project_id", required=True, help="The project the key belongs to.")
@click.option("--replaces", metavar="KEY_ID", help="The key this one replaces (kept for the grace period, then retired).")
@pass_invocation
def key_add(inv: Invocation, project_id: str, replaces: str | None) -> None:
    """Add a key made by hand; the key is read from stdin or a hidden prompt."""
    from keyward import inventory

    view = inventory.add_key(inv.context(), project_id, _read_secret(), replaces=replaces)
    click.echo(f"key {view.key_id} ({view.kind}, {view.masked}) added to {project_id} and active")
    if view.kind == "standard":
        click.echo("warning: Gemini rejects standard (AIza) keys since September 2026, so keyward never "
                   "publishes this one; create an auth key bound to a service account", err=True)


@key.command("list")
@click.option("--project", "project_id")
@click.option("--all", "include_retired", is_flag=True, help="Include retired and failed keys.")
@pass_invocation
def key_list(inv: Invocation, project_id: str | None, include_retired: bool) -> None:
    """List keys (masked), with state, kind, age and next rotation."""
    from keyward import inventory

    ctx = inv.context()
    now = ctx.now()
    rows = [(k.key_id, k.project_id, k.kind, k.state, k.masked, age(k.created_at, now),
             until(k.rotate_after, now) if k.state == "active" else until(k.grace_until, now)
             if k.state == "previous" else "-")
            for k in inventory.list_keys(ctx, project_id, include_retired=include_retired)]
    click.echo(table(["KEY", "PROJECT", "KIND", "STATE", "SECRET", "AGE", "ROTATE/RETIRE"], rows))


@key.command("retire")
@click.argument("key_id")
@pass_invocation
def key_retire(inv: Invocation, key_id: str) -> None:
    """Retire KEY_ID now (deleted at Google when keyward created it)."""
    from keyward.rotation.service import retire_key

    click.echo(retire_key(inv.context(), key_id))


__all__ = ["pool", "project", "key"]
