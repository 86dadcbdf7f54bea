"""The `keyward` command. `keyward current` (and `keyward status` when the daemon answers it) take a
fast path that never imports click, SQLAlchemy or the Google libraries: scripts call `current` on
every start, and an operator's screen should come at once. Without a daemon, `keyward status` still
skips click and builds the status from the database. Everything else goes through click."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from keyward.cli.pipes import StdoutClosed, guard_stdout, quiet_exit

    guard_stdout()
    try:
        try:
            _main(argv)
        finally:  # what is still buffered meets a closed pipe here, not in the interpreter's exit
            sys.stdout.flush()
    except StdoutClosed:
        quiet_exit()


def _main(argv: list[str] | None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    config_path, rest = _leading_config(args)
    if rest[:1] == ["current"]:
        from keyward.cli.current import fast_main

        code = fast_main(rest[1:], config_path)
        if code is not None:
            sys.exit(code)
    if rest[:1] == ["status"]:
        from keyward.cli.status_screen import fast_main as fast_status

        code = fast_status(rest[1:], config_path)
        if code is not None:
            sys.exit(code)
    if "run" in rest[:3] and "--once" not in rest:
        # A SIGHUP while the daemon is still importing would kill it (under systemd: a restart
        # loop). Ignore it until the daemon installs its own handler, which reloads.
        import signal

        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        if argv is None:  # the process's own command line (keyward.cli.run_fast)
            from keyward.cli.run_fast import fast_main as fast_run

            code = fast_run(args)
            if code is not None:
                sys.exit(code)
    from keyward.cli.app import cli

    cli.main(args=args, prog_name="keyward")


def _leading_config(args: list[str]) -> tuple[str | None, list[str]]:
    """Take a leading `--config FILE` off the arguments, for the fast paths; anything else is click's."""
    if args[:1] == ["--config"] and len(args) >= 2:
        return args[1], args[2:]
    if args and args[0].startswith("--config="):
        return args[0].split("=", 1)[1], args[1:]
    return None, args
