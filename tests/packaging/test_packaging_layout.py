"""The wheel's package list is explicit (migrations/ installs as keyward.migrations); keep it whole."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _declared() -> set[str]:
    with open(REPO / "pyproject.toml", "rb") as fh:
        return set(tomllib.load(fh)["tool"]["setuptools"]["packages"])


def test_every_package_in_the_source_tree_is_declared_for_the_wheel():
    on_disk = {".".join(init.parent.relative_to(REPO).parts) for init in (REPO / "keyward").rglob("__init__.py")}
    on_disk |= {"keyward." + ".".join(init.parent.relative_to(REPO).parts)
                for init in (REPO / "migrations").rglob("__init__.py")}
    # systemd/ ships as data (keyward.unit_files), every folder of it that holds units
    on_disk |= {".".join(("keyward", "unit_files") + unit.parent.relative_to(REPO / "systemd").parts)
                for unit in (REPO / "systemd").rglob("*.service")}
    assert on_disk == _declared()


def test_migrations_when_installed_are_found_as_keyward_migrations():
    from keyward.storage.migrate import _script_location

    location = Path(_script_location())
    assert (location / "env.py").is_file() and any((location / "versions").glob("0001_*.py"))
