"""The nspawn harness itself: where it finds a Debian mirror, and how it reports being unable to run."""

from __future__ import annotations

import pytest

from support import nspawn


def test_debian_mirror_when_deb822_sources_name_bookworm_uses_that_uri(tmp_path, monkeypatch):
    monkeypatch.delenv("KEYWARD_TEST_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example.internal/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\nTypes: deb\nURIs: http://mirror.example.internal/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n")

    assert nspawn.debian_mirror(tmp_path) == "http://mirror.example.internal/debian"


def test_debian_mirror_when_one_line_sources_name_bookworm_uses_that_uri(tmp_path, monkeypatch):
    monkeypatch.delenv("KEYWARD_TEST_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list").write_text(
        "# deb http://old.example.internal/debian bookworm main\n"
        "deb [arch=amd64] http://apt.example.internal/debian bookworm main contrib\n")

    assert nspawn.debian_mirror(tmp_path) == "http://apt.example.internal/debian"


def test_debian_mirror_when_nothing_configured_falls_back_to_deb_debian_org(tmp_path, monkeypatch):
    monkeypatch.delenv("KEYWARD_TEST_DEBIAN_MIRROR", raising=False)

    assert nspawn.debian_mirror(tmp_path) == nspawn.DEFAULT_MIRROR


def test_unavailable_when_not_root_says_so(monkeypatch):
    monkeypatch.setattr(nspawn.os, "geteuid", lambda: 1000)

    assert "root" in nspawn.unavailable()


def test_unavailable_when_tools_missing_names_the_packages(monkeypatch):
    monkeypatch.setattr(nspawn.os, "geteuid", lambda: 0)
    monkeypatch.setattr(nspawn.shutil, "which", lambda tool: None if tool == "debootstrap" else "/usr/bin/" + tool)

    reason = nspawn.unavailable()

    assert "debootstrap" in reason and "apt-get install systemd-container debootstrap" in reason


def test_nspawn_tests_when_unable_to_run_fail_in_ci_and_skip_elsewhere(monkeypatch):
    from test_nspawn import _unavailable

    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI needs it: no nspawn"):
        _unavailable("no nspawn")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="no nspawn"):
        _unavailable("no nspawn")
