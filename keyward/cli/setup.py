"""`keyward init`, `keyward config validate`, `keyward db upgrade|status`."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import click

from keyward.cli.app import Invocation, pass_invocation
from keyward.errors import KeywardError, UsageError


@click.command()
@click.option("--path", "target", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write (default: ~/.config/keyward/keyward.toml, or "
                   "/etc/keyward/keyward.toml as root).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(target: Path | None, force: bool) -> None:
    """Write a commented example configuration that documents every key.

    It runs as written (no projects yet, default paths); uncomment and edit what you need.
    """
    from keyward.config import example_config
    from keyward.config.paths import SYSTEM_CONFIG, user_config_path

    if target is None:
        target = SYSTEM_CONFIG if os.geteuid() == 0 else user_config_path()
    if target.exists() and not force:
        raise UsageError(f"{target} exists; pass --force to overwrite it")
    from keyward.atomicfile import AtomicWriteError, replace_file

    text = example_config()
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        replace_file(target, text.encode(), mode=0o640, temp_prefix=f".{target.name}.")
    except AtomicWriteError as exc:
        raise KeywardError(f"{target}: cannot {exc.step}: {exc.strerror}") from None
    except OSError as exc:
        raise KeywardError(f"{target.parent}: cannot create the directory: {exc.strerror}") from None
    click.echo(f"wrote {target}; check it with `keyward --config {target} config validate`")


@click.group()
def config() -> None:
    """Check the configuration."""


@config.command("validate")
@pass_invocation
def validate(inv: Invocation) -> None:
    """Load the configuration strictly and report every problem, changing nothing."""
    from keyward.config import find_config_path, load_config

    path = find_config_path(inv.config_path)
    cfg = load_config(path)
    where = str(path) if path else "no configuration file: built-in defaults"
    click.echo(f"{where}: ok ({len(cfg.pools)} pool(s), {len(cfg.projects)} project(s))")


@click.group()
def db() -> None:
    """Upgrade or inspect the database schema."""


@contextmanager
def _engine(inv: Invocation) -> Iterator:
    """The configured database, opened without the automatic upgrade every other command does."""
    from keyward.config import find_config_path, load_config
    from keyward.storage.engine import make_engine

    engine = make_engine(load_config(find_config_path(inv.config_path)).database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@db.command("upgrade")
@pass_invocation
def upgrade(inv: Invocation) -> None:
    """Apply every pending schema migration."""
    from keyward.storage import migrate

    with _engine(inv) as engine:
        before, after = migrate.run_upgrade(engine)
    if before == after:
        click.echo(f"database already at revision {after}")
    else:
        click.echo(f"database upgraded from {before or 'empty'} to {after}")


@db.command("status")
@pass_invocation
def db_status(inv: Invocation) -> None:
    """Show the database's schema revision and this keyward's."""
    from keyward.storage import migrate

    with _engine(inv) as engine:
        current, head = migrate.status(engine)
    state = "up to date" if current == head else "needs `keyward db upgrade`"
    click.echo(f"database revision: {current or 'empty'}; this keyward: {head} ({state})")
