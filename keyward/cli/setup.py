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
    """Upgrade or inspect the database schema; seal key strings at rest."""


@contextmanager
def _engine(inv: Invocation) -> Iterator:
    """The configured database, opened without the automatic upgrade every other command does."""
    from keyward.config import find_config_path, load_config
    from keyward.storage.engine import make_engine

    from sqlalchemy.exc import SQLAlchemyError

    from keyward.storage.failures import database_failure

    engine = make_engine(load_config(find_config_path(inv.config_path)).database_url)
    try:
        yield engine
    except SQLAlchemyError as exc:  # name the file: the generic edge knows no URL
        raise database_failure(exc, "cannot read the database", engine.url) from exc
    finally:
        engine.dispose()


@db.command("upgrade")
@pass_invocation
def upgrade(inv: Invocation) -> None:
    """Apply every pending schema migration (sealing plain key strings when a master key exists)."""
    from keyward.config import find_config_path, load_config
    from keyward.master_key import sealer_for
    from keyward.storage import migrate

    with _engine(inv) as engine:
        sealer = sealer_for(load_config(find_config_path(inv.config_path)))
        before, after = migrate.run_upgrade(engine, sealer)
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
    if current == head:
        from keyward.at_rest import AtRest
        from keyward.storage.secret_queries import secret_counts

        with _engine(inv) as engine, engine.connect() as conn:
            counts = secret_counts(conn)
        click.echo(f"key strings: {AtRest(counts, None, (), '').describe()}")


@db.command("encrypt")
@pass_invocation
def encrypt(inv: Invocation) -> None:
    """Seal every key string still stored in plain text, in place, in one transaction."""
    from keyward import at_rest

    result = at_rest.encrypt(inv.context())
    click.echo(result.describe())


@db.command("rekey")
@click.option("--new-key", is_flag=True,
              help="First create a new master key in front of the current one (in the file or keyring "
                   "holding it).")
@pass_invocation
def rekey(inv: Invocation, new_key: bool) -> None:
    """Seal every key string with the first master key found (after `db master-key init --add`).

    Sealed values only have their data key re-wrapped; the change is one transaction, journaled
    without secrets. Afterwards the older master keys can be removed from where they are kept.
    """
    from keyward import at_rest

    ctx = inv.context()
    if new_key:
        from keyward.master_key import add_new

        new, _ = add_new(ctx.config, ctx.store.sealer.primary, ctx.env)
        ctx.store.sealer.found(refresh=True)
        click.echo(f"created master key {new.id} in {new.source}")
    result = at_rest.rekey(ctx)
    click.echo(result.describe())
    state = at_rest.inspect(ctx)
    retired = [k for k in state.held if k != result.master_id and k not in state.counts]
    if retired:
        click.echo(f"no secret is sealed with master key {', '.join(retired)} any more; it may be removed")
    behind = {k: n for k, n in state.counts.items() if k != result.master_id}
    if behind:  # written by a process that had not seen the new key yet
        click.echo("still not sealed with it: " + ", ".join(f"{n} ({k})" for k, n in sorted(behind.items()))
                   + "; run `keyward db rekey` again")


@db.group("master-key")
def master_key() -> None:
    """Create and inspect the master key that seals key strings at rest."""


@master_key.command("init")
@click.option("--file", "target", type=click.Path(dir_okay=False, path_type=Path),
              help="Write it to this file (default: master_key_file from the config, else master.key "
                   "beside the config file).")
@click.option("--keyring", "use_keyring", is_flag=True, help="Store it in the OS keyring (keyward/master-key).")
@click.option("--add", is_flag=True,
              help="Put a new key in front of the existing ones (then run `keyward db rekey`).")
@pass_invocation
def master_key_init(inv: Invocation, target: Path | None, use_keyring: bool, add: bool) -> None:
    """Create a master key and say where it went (never print the key itself)."""
    from keyward import master_key as mk
    from keyward.config import find_config_path, load_config

    if target is not None and use_keyring:
        raise UsageError("choose --file or --keyring, not both")
    if use_keyring:
        new, kept = mk.init_keyring(add=add)
    else:
        path = target or mk.default_file(load_config(find_config_path(inv.config_path)))
        new, kept = mk.init_file(path, add=add)
    click.echo(f"created master key {new.id} in {new.source}"
               + (f" (kept {', '.join(k.id for k in kept)} after it for opening)" if kept else ""))
    if target is not None:
        click.echo(f"keyward looks for it there when the config says master_key_file = \"{target}\"")
    click.echo("next: `keyward db rekey` seals every stored key string with it")


@master_key.command("show")
@pass_invocation
def master_key_show(inv: Invocation) -> None:
    """List the master keys found (ids and places, never the keys) and what each seals."""
    from keyward import at_rest

    state = at_rest.inspect(inv.context())
    click.echo(f"looked in: {state.looked}")
    for number, key_id in enumerate(state.held):
        role = "seals new secrets" if number == 0 else "opens only"
        click.echo(f"master key {key_id}: {role}; {state.counts.get(key_id, 0)} secret(s)")
    click.echo(f"key strings: {state.describe()}")
