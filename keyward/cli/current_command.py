"""The click face of `keyward current`, for `keyward --config FILE current` and `--help`; the work
is in keyward.cli.current, which plain `keyward current` reaches without importing click."""

from __future__ import annotations

import click

from keyward.cli.current import run


@click.command("current")
@click.option("--pool", default="default", show_default=True, metavar="NAME",
              help="The pool whose published key to print.")
@click.option("--check", is_flag=True, help="Exit 1 when every project of the pool is exhausted.")
@click.pass_context
def current(ctx: click.Context, pool: str, check: bool) -> None:
    """Print the pool's published key (and nothing else) for scripts."""
    ctx.exit(run(pool, check, ctx.find_root().params.get("config_path")))
