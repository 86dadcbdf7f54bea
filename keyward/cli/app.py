"""The click command tree and the one place errors become messages and exit codes.

Subcommands are imported only when invoked (a lazy group), so `keyward --help` or `keyward pool list`
does not import the Google client or the scheduler. Exit codes: 0 ok, 1 runtime failure, 2 usage or
configuration error. A traceback is shown only with --debug.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
import traceback

import click

import keyward
from keyward.cli.messages import error_line
from keyward.keystrings import redact

# name → (module, attribute, short help). Help text lives here so `keyward --help` imports nothing.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": ("keyward.cli.setup", "init", "Write a commented example configuration."),
    "config": ("keyward.cli.setup", "config", "Check the configuration."),
    "db": ("keyward.cli.setup", "db", "Upgrade or inspect the database schema."),
    "pool": ("keyward.cli.inventory", "pool", "Add, list and remove pools."),
    "project": ("keyward.cli.inventory", "project", "Add, list and remove projects."),
    "key": ("keyward.cli.inventory", "key", "Add, list and retire keys."),
    "keys": ("keyward.cli.rotate", "keys", "Reconcile keys at Google with keyward's (sweep)."),
    "rotate": ("keyward.cli.rotate", "rotate", "Rotate the keys of managed projects."),
    "report": ("keyward.cli.usage", "report", "Report usage or a quota error for a pool's key."),
    "usage": ("keyward.cli.usage", "usage", "Poll and prune usage records."),
    "status": ("keyward.cli.status", "status", "Show pools, projects, quota, keys and health."),
    "alerts": ("keyward.cli.alerts", "alerts", "Run the alert hooks for trouble that started or ended."),
    "current": ("keyward.cli.current_command", "current", "Print a pool's published key (for scripts)."),
    "exec": ("keyward.cli.exec_command", "exec_", "Run a program with the key; restart it on a new key."),
    "run": ("keyward.cli.daemon", "run", "Run the daemon (or one pass with --once)."),
    "demo": ("keyward.cli.daemon", "demo", "Run a live demo against the local emulator."),
    "emulator": ("keyward.cli.daemon", "emulator", "Serve the local emulator of Google's APIs."),
    "systemd": ("keyward.cli.units", "systemd", "Print the systemd units for this installation."),
}


class KeywardGroup(click.Group):
    """A lazy group that turns KeywardError into a message and its exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        from keyward.cli.options import late_options

        return late_options(getattr(importlib.import_module(module), attr))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.exceptions.ClickException as exc:
            _redact_click(exc)
            raise

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.exceptions.ClickException as exc:
            _redact_click(exc)  # click quotes arguments back; one of them may be a key
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("keyward: interrupted", err=True)
            ctx.exit(130)
        except Exception as exc:  # KeywardError, and every other escape; no traceback without --debug
            line, code = error_line(exc)
            _report(ctx, exc, line)
            ctx.exit(code)


_EXTRA_ARGS = re.compile(r"^(Got unexpected extra arguments?) \(.*\)$", re.S)


def _redact_click(exc: click.exceptions.ClickException) -> None:
    """Drop the values click's own messages quote back when they could hold a key string."""
    message = _EXTRA_ARGS.sub(r"\1 (not shown: it could be a key; keys are read only from stdin)",
                              exc.message)
    exc.message = redact(message)


def _report(ctx: click.Context, exc: BaseException, message: str) -> None:
    if ctx.find_root().params.get("debug"):
        click.echo(redact("".join(traceback.format_exception(exc))), err=True)
    click.echo(message, err=True)


@click.group(cls=KeywardGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="FILE", envvar="KEYWARD_CONFIG",
              help="Configuration file (default: $KEYWARD_CONFIG, ~/.config/keyward/keyward.toml, "
                   "/etc/keyward/keyward.toml).")
@click.option("--debug", is_flag=True, help="Log debug lines and show tracebacks.")
@click.version_option(keyward.__version__, prog_name="keyward")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, debug: bool) -> None:
    """keyward keeps the Gemini API keys of your Google Cloud projects rotated, counted and
    published: the least-loaded project's key, in a secret file or the OS keyring."""
    ctx.obj = Invocation(config_path, debug)
    if not logging.getLogger().handlers:
        from keyward.log import setup_logging

        setup_logging("debug" if debug else "warning", stream=sys.stderr)


class Invocation:
    """What the root options say; builds the Context on first use and closes it at exit."""

    def __init__(self, config_path: str | None, debug: bool):
        self.config_path = config_path
        self.debug = debug
        self._context = None

    def context(self):
        if self._context is None:
            from keyward.context import Context

            self._context = Context.load(self.config_path)
            click.get_current_context().call_on_close(self._context.close)
        return self._context


pass_invocation = click.make_pass_decorator(Invocation)
