"""`keyward run`, `keyward emulator`, `keyward demo`."""

from __future__ import annotations

import sys

import click

from keyward.cli.app import Invocation, pass_invocation


@click.command()
@click.option("--once", is_flag=True, help="Run every job once and exit (for cron and tests).")
@pass_invocation
def run(inv: Invocation, once: bool) -> None:
    """Run the daemon: rotation, usage polling, publishing, on timers."""
    from keyward.config import find_config_path, load_config
    from keyward.daemon import Daemon
    from keyward.log import setup_logging

    config = load_config(find_config_path(inv.config_path))
    setup_logging("debug" if inv.debug else config.log_level, stream=sys.stderr)
    click.get_current_context().exit(Daemon(inv.config_path).run(once=once))


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8089, show_default=True, type=click.IntRange(0, 65535))
@click.option("--seed", type=click.Path(exists=True, dir_okay=False),
              help="JSON file of projects (and keys) to create at start.")
def emulator(host: str, port: int, seed: str | None) -> None:
    """Serve the local emulator of Google's APIs (API Keys, Gemini, Monitoring, Service Usage).

    Point keyward at it with KEYWARD_GOOGLE_EMULATOR_HOST=HOST:PORT.
    """
    import json

    from keyward.emulator import serve

    data = None
    if seed is not None:
        with open(seed, encoding="utf-8") as fh:
            try:
                data = json.load(fh)
            except ValueError as exc:
                raise click.BadParameter(f"{seed}: not valid JSON ({exc})", param_hint="--seed") from None
    serve(host=host, port=port, seed=data)


@click.command()
@click.option("--duration", default=None, metavar="DURATION",
              help="Stop after this long (e.g. 90s, 5m; default 45s, long enough to see switching, "
                   "429s and a whole rotation); 0s runs until Ctrl-C.")
@click.option("--state-dir", type=click.Path(file_okay=False), help="Keep the demo's state here (default: a new temp dir).")
@click.option("--quiet", is_flag=True, help="Print events only, no live status screen.")
def demo(duration: str, state_dir: str | None, quiet: bool) -> None:
    """Run keyward against the local emulator: 3 projects, live traffic, switching and rotation."""
    from keyward.config import parse_duration
    from keyward.demo import DEFAULT_DURATION, Demo

    try:
        seconds = parse_duration(duration or DEFAULT_DURATION).total_seconds()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--duration") from None
    code = Demo(state_dir=state_dir, live=not quiet and sys.stdout.isatty()).run(seconds or None)
    click.get_current_context().exit(code)
