"""`keyward status [--json] [--check] [--watch [SECONDS]]`: the screen an operator reads first.

The running daemon answers it (see keyward.status_socket); without one, the command builds the
status from the database itself. `keyward status` and `keyward status --json` without other options
take a fast path that never imports click (keyward.cli.status_screen.fast_main).
"""

from __future__ import annotations

import sys

import click

from keyward.cli.app import Invocation, pass_invocation
from keyward.cli.status_screen import (EXIT_ERRORS_SHOWN, SUMMARY_THRESHOLD, TOP_DEFAULT, from_daemon, render,
                                       screen, shows_error, use_color, watch)
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
@click.option("--color/--no-color", default=None,
              help="Color the text (default: on a terminal, unless $NO_COLOR is set).")
@click.option("--check", is_flag=True,
              help="Exit 1 when the status shows an error (a stopped daemon, a pool without a key, …).")
@click.option("--iterations", type=click.IntRange(min=1), default=None, hidden=True)
@pass_invocation
def status(inv: Invocation, as_json: bool, pretty: bool, show_all: bool, top: int,
           watch_seconds: float | None, color: bool | None, check: bool, iterations: int | None) -> None:
    """Show pools, projects, quota, keys and health (no Google calls).

    Exit status: 0, or with --check 1 when an error is shown (warnings alone leave it 0); 2 for a
    usage or configuration error. Into a pipe, --watch prints plain frames one after another.
    """
    color = use_color(color)
    config_path = inv.config_path
    errors = False

    def draw() -> str:
        nonlocal errors
        text = from_daemon(config_path)
        if text is None:
            from keyward.status_socket import status_text

            text = status_text(inv.context())
        if check:  # parsing the JSON once more costs time at thousands of projects: only when asked
            errors = shows_error(text)
        if as_json:
            return pretty_json(text) if pretty else text
        return screen(text, color, top=None if show_all else top)

    if watch_seconds is None:
        click.echo(draw())
    else:
        watch(draw, watch_seconds, iterations=iterations, clear=sys.stdout.isatty())
    if check and errors:
        click.get_current_context().exit(EXIT_ERRORS_SHOWN)
