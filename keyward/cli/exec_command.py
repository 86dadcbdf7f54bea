"""`keyward exec [--pool P] [--on-change restart|signal:NAME|none] -- COMMAND [ARGS]...`: run a
program with the pool's key in its environment and follow the key when the daemon publishes
another (see keyward.supervisor)."""

from __future__ import annotations

import click

from keyward.cli.app import pass_invocation


@click.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--pool", default="default", show_default=True, help="The pool whose key the program gets.")
@click.option("--on-change", "on_change", default="restart", show_default=True, metavar="restart|signal:NAME|none",
              help="When the published key changes: restart the program, send it a signal (it then "
                   "rereads the key itself), or leave it.")
@click.option("--variable", "variables", multiple=True, metavar="NAME",
              help="Environment variable for the key (repeatable). Default: the pool's env file "
                   "sink's variables, else GEMINI_API_KEY.")
@click.option("--stop-timeout", default="10s", show_default=True,
              help="How long a restart waits after SIGTERM before SIGKILL.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_invocation
def exec_(inv, pool: str, on_change: str, variables: tuple[str, ...], stop_timeout: str,
          command: tuple[str, ...]) -> None:
    """Run COMMAND with the pool's current key in its environment; restart it (or signal it) when
    the published key changes. Exits with COMMAND's exit status. Needs only read access to the key."""
    from keyward.config.durations import parse_duration
    from keyward.errors import UsageError
    from keyward.keywatch import KeyWatch
    from keyward.published import DEFAULT_VARIABLES
    from keyward.sinks.file import check_variables
    from keyward.supervisor import Supervisor, parse_on_change

    action = parse_on_change(on_change)
    try:
        timeout = parse_duration(stop_timeout).total_seconds()
    except ValueError as exc:
        raise UsageError(f"--stop-timeout: {exc}") from None
    watch = KeyWatch(pool, config_path=inv.config_path)
    if variables:
        names = check_variables(list(variables), pool)
    elif watch.file is not None and watch.file[1] == "env" and watch.file[2]:
        names = tuple(watch.file[2])
    else:
        names = DEFAULT_VARIABLES
    code = Supervisor(list(command), watch, action, names, stop_timeout=timeout).run()
    click.get_current_context().exit(code)
