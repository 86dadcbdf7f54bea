"""`keyward status [--json] [--watch [SECONDS]]`: the screen an operator reads first.

The running daemon answers it (see keyward.status_socket); without one, the command builds the
status from the database itself. `keyward status` and `keyward status --json` without other options
take a fast path that never imports click (keyward.cli.status_screen.fast_main).
"""

from __future__ import annotations

import sys

import click

from keyward.cli.app import Invocation, pass_invocation
from keyward.cli.status_screen import SUMMARY_THRESHOLD, TOP_DEFAULT, from_daemon, render, screen, watch
from keyward.status_socket import pretty as pretty_json

__all__ = ["status", "render"]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON (stable schema).")
@click.option("--pretty", is_flag=True, help="With --json: indent it and sort its keys, for reading.")
@click.option("--all", "show_all", is_flag=True,
              help="List every project and key, however many (default: a summary past "
                   f"{SUMMARY_THRESHOLD} projects).")
@click.option("--top", type=click.IntRange(min=0), default=TOP_DEFAULT, show_default=True,
              help="In a summary, how many of each pool's most loaded projects to list.")
@click.option("--watch", "watch_seconds", type=click.FloatRange(min=0.5), is_flag=False, flag_value=2.0,
              default=None, metavar="[SECONDS]", help="Redraw every SECONDS (default 2) until Ctrl-C.")
@click.option("--color/--no-color", default=None, help="Color the text (default: when a terminal).")
@click.option("--iterations", type=click.IntRange(min=1), default=None, hidden=True)
@pass_invocation
def status(inv: Invocation, as_json: bool, pretty: bool, show_all: bool, top: int,
           watch_seconds: float | None, color: bool | None, iterations: int | None) -> None:
    """Show pools, projects, quota, keys and health (no Google calls)."""
    if color is None:
        color = sys.stdout.isatty()
    config_path = inv.config_path

    def draw() -> str:
        text = from_daemon(config_path)
        if text is None:
            from keyward.status_socket import status_text

            text = status_text(inv.context())
        if as_json:
            return pretty_json(text) if pretty else text
        return screen(text, color, top=None if show_all else top)

    if watch_seconds is None:
        click.echo(draw())
    else:
        watch(draw, watch_seconds, iterations=iterations)
