"""What the wheel says about itself: license, extras, classifiers, URLs, type information."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def project() -> dict:
    with open(REPO / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["project"]


def test_license_when_declared_is_an_spdx_string_with_its_file(project):
    assert project["license"] == "Apache-2.0"  # the table form stops building on 2027-02-18
    assert project["license-files"] == ["LICENSE"]
    assert "Apache License" in (REPO / "LICENSE").read_text() and "Version 2.0" in (REPO / "LICENSE").read_text()


def test_postgresql_driver_when_not_asked_for_is_not_a_dependency(project):
    assert not any(d.startswith("psycopg") for d in project["dependencies"])
    assert any(d.startswith("psycopg") for d in project["optional-dependencies"]["postgresql"])
    assert any(d.startswith("psycopg") for d in project["optional-dependencies"]["test"])  # tests use it


def test_extras_when_declared_each_add_something_the_base_lacks(project):
    base = {re.split(r"[<>=\[; ]", d)[0].lower() for d in project["dependencies"]}
    for name, requirements in project["optional-dependencies"].items():
        added = {re.split(r"[<>=\[; ]", r)[0].lower() for r in requirements} - base
        assert added, f"extra {name!r} adds nothing"
    # keyring itself depends on SecretStorage on Linux: an extra for it would add nothing
    assert "secretservice" not in project["optional-dependencies"]


def test_classifiers_when_declared_are_present(project):
    assert "Typing :: Typed" in project["classifiers"]
    assert any(c.startswith("Programming Language :: Python :: 3.11") for c in project["classifiers"])
    # No project URLs until keyward has a public home: a made-up address would mislead.
    assert "urls" not in project


def test_py_typed_when_installed_is_in_the_package():
    import keyward

    assert (Path(keyward.__file__).parent / "py.typed").is_file()


def test_make_engine_when_postgres_driver_missing_names_the_extra(monkeypatch):
    import sys

    from keyward.errors import StorageError
    from keyward.storage.engine import make_engine

    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if keyward[postgresql] was not installed

    with pytest.raises(StorageError, match=r"keyward\[postgresql\]") as caught:
        make_engine("postgresql://keyward:secret-password@db.example.internal/keyward")
    assert "secret-password" not in str(caught.value)
