"""The root options `--config FILE` and `--debug`, accepted after the subcommand as well.

People (and unit files) write `keyward run --config /etc/keyward/keyward.toml` as often as
`keyward --config … run`; refusing one of the two orders is a trap with no purpose. Each leaf
command gets hidden copies of the root options whose callbacks update the root's values, so every
command reads the configuration path from one place (the `Invocation`, and the root context's
params) whichever order was used.
"""

from __future__ import annotations

import logging

import click

_MARK = "_keyward_late_options"


def _root(ctx: click.Context) -> click.Context:
    return ctx.find_root()


def _set_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    root = _root(ctx)
    root.params["config_path"] = value
    if root.obj is not None:
        root.obj.config_path = value


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value:
        return
    root = _root(ctx)
    root.params["debug"] = True
    if root.obj is not None:
        root.obj.debug = True
    from keyward.log import setup_logging

    if logging.getLogger().level > logging.DEBUG:
        setup_logging("debug")


def late_options(command: click.Command) -> click.Command:
    """Give `command` (and every leaf command under it) `--config` and `--debug`; idempotent."""
    if getattr(command, _MARK, False):
        return command
    setattr(command, _MARK, True)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            late_options(sub)
        return command
    names = {opt for p in command.params for opt in getattr(p, "opts", [])}
    if "--config" not in names:
        command.params.append(click.Option(
            ["--config", "late_config"], metavar="FILE", expose_value=False, is_eager=True,
            callback=_set_config, help="Configuration file (as `keyward --config FILE`)."))
    if "--debug" not in names:
        command.params.append(click.Option(
            ["--debug", "late_debug"], is_flag=True, expose_value=False, is_eager=True,
            callback=_set_debug, help="Log debug lines and show tracebacks (as `keyward --debug`)."))
    return command
