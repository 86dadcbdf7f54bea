"""`keyward systemd unit [--user] [NAME]`: print a shipped unit file for this installation.

The unit files in the source tree name the command where the README installs it
(/opt/keyward/bin/keyward for the system service). An installation elsewhere (another venv, pipx,
a distribution package) would need the line edited by hand, and a wrong ExecStart= is a unit that
never starts (status 203/EXEC). Printing the unit with the path of the `keyward` that prints it
makes the two impossible to drift apart:

    keyward systemd unit > /etc/systemd/system/keyward.service
"""

from __future__ import annotations

import os
import re
import sys
from importlib import resources
from pathlib import Path

import click

from keyward.errors import UsageError

DEFAULT_UNIT = "keyward.service"
# ExecStart= lines that run keyward (any path ending in /keyward); other commands stay as shipped.
_EXEC_START = re.compile(r"^(ExecStart(?:Pre|Post)?=[-@:+!]*)(\S*/keyward)(\s.*)?$", re.MULTILINE)
_SOURCE_TREE = Path(__file__).resolve().parents[2] / "systemd"


def _unit_dir(user: bool):
    """The shipped unit files: inside the installed package, or the source tree's systemd/."""
    try:
        base = resources.files("keyward.unit_files")
    except ModuleNotFoundError:  # an editable install maps no data-only package; read the tree
        base = _SOURCE_TREE
    return base / "user" if user else base


def available(user: bool) -> list[str]:
    return sorted(p.name for p in _unit_dir(user).iterdir() if p.name.endswith((".service", ".path",
                                                                                ".timer", ".socket")))


def command_words() -> list[str]:
    """How to start this installation's keyward: the script beside the interpreter, or `python -m`.

    The interpreter path is kept as it is (not resolved): in a venv, /opt/keyward/bin/python is a
    symlink to the system Python, and only the unresolved path runs inside the venv.
    """
    script = Path(sys.executable).parent / "keyward"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "keyward"]


def quote(word: str) -> str:
    """Quote one word for a unit file's command line (systemd.service(5), "Command lines")."""
    word = word.replace("%", "%%").replace("$", "$$")
    if re.search(r"[\s\"'\\;]", word):
        return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word


def render_unit(text: str, words: list[str]) -> str:
    """Return the unit `text` with the keyward command of each ExecStart= line replaced by
    `words`; lines running anything else (systemctl, a shell) are left as they are."""
    replacement = " ".join(quote(w) for w in words)
    return _EXEC_START.sub(lambda m: m.group(1) + replacement + (m.group(3) or ""), text)


def unit_text(name: str, user: bool) -> str:
    names = available(user)
    if name not in names:
        kind = "user" if user else "system"
        raise UsageError(f"no {kind} unit named {name!r}; shipped: {', '.join(names) or 'none'}")
    return render_unit((_unit_dir(user) / name).read_text(encoding="utf-8"), command_words())


@click.group("systemd")
def systemd() -> None:
    """Print the systemd units for this installation."""


@systemd.command("unit")
@click.argument("name", default=DEFAULT_UNIT, metavar="[NAME]")
@click.option("--user", is_flag=True, help="The user unit (for `systemctl --user`) instead of the system one.")
@click.option("--list", "list_units", is_flag=True, help="List the shipped units instead.")
def unit(name: str, user: bool, list_units: bool) -> None:
    """Print unit NAME (default keyward.service) with ExecStart= naming this keyward.

    \b
    keyward systemd unit > /etc/systemd/system/keyward.service
    keyward systemd unit --user > ~/.config/systemd/user/keyward.service
    """
    if list_units:
        click.echo("\n".join(available(user)))
        return
    click.echo(unit_text(name, user), nl=False)


__all__ = ["systemd"]
