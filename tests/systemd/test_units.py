"""The shipped unit files pass systemd's own checks, and `keyward systemd unit` prints them right.

`systemd-analyze verify` exits 0 even on unknown keys, so any output at all fails a test. It also
checks that ExecStart's binary exists: the unit `keyward systemd unit` prints names this
installation's keyward, so it is verified as printed; the files in the tree name /opt/keyward, which
does not exist here, so they are verified through a copy whose ExecStart executable is swapped for
this Python interpreter, with everything else byte-for-byte the same. Whether the unit really starts
is tests/systemd/test_nspawn.py's job.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEM_UNIT = REPO / "systemd" / "keyward.service"
USER_UNIT = REPO / "systemd" / "user" / "keyward.service"
MAX_EXPOSURE = 2.5

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)"
)

_EXEC_START = re.compile(r"^ExecStart=(\S+)", re.MULTILINE)


def _settings(unit: Path) -> dict[str, list[str]]:
    """Return `Section.Key -> [values]`; systemd keys may repeat, so every value is kept."""
    found: dict[str, list[str]] = {}
    section = ""
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.setdefault(f"{section}.{key}", []).append(value)
    return found


def _runnable_copy(unit: Path, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    original = unit.read_text()
    text, count = _EXEC_START.subn(f"ExecStart={sys.executable}", original)
    assert count == 1
    changed = [(a, b) for a, b in zip(original.splitlines(), text.splitlines()) if a != b]
    assert len(changed) == 1 and changed[0][0].startswith("ExecStart=")
    copy = directory / unit.name
    copy.write_text(text)
    return copy


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ANALYZE, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


@needs_analyze
def test_system_unit_when_verified_prints_nothing(tmp_path: Path):
    copy = _runnable_copy(SYSTEM_UNIT, tmp_path / "system")

    result = _run("verify", str(copy))

    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_analyze
def test_user_unit_when_verified_in_user_mode_prints_nothing(tmp_path: Path):
    copy = _runnable_copy(USER_UNIT, tmp_path / "user")
    runtime = tmp_path / "xdg-runtime"
    runtime.mkdir(mode=0o700)

    result = _run("--user", "verify", str(copy), env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})

    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_analyze
def test_system_unit_when_scored_has_low_exposure():
    result = _run("security", "--offline=yes", str(SYSTEM_UNIT))

    match = re.search(r"Overall exposure level for keyward\.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    score = float(match.group(1))
    print(f"systemd-analyze security exposure: {score}")
    assert score <= MAX_EXPOSURE, result.stdout


def test_system_unit_when_read_runs_as_notify_service_with_expected_command():
    s = _settings(SYSTEM_UNIT)

    assert s["Service.Type"] == ["notify"]
    assert s["Service.NotifyAccess"] == ["main"]
    assert s["Service.ExecStart"] == ["/opt/keyward/bin/keyward run --config /etc/keyward/keyward.toml"]
    assert s["Service.LimitNOFILE"] == ["16384"]
    assert s["Service.ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["Service.WatchdogSec"] == ["60s"]
    assert s["Service.User"] == s["Service.Group"] == ["keyward"]
    assert s["Install.WantedBy"] == ["multi-user.target"]


def test_system_unit_when_read_keeps_published_keys_group_readable_only():
    s = _settings(SYSTEM_UNIT)

    assert s["Service.RuntimeDirectory"] == ["keyward"]
    assert s["Service.RuntimeDirectoryMode"] == ["0750"]
    assert s["Service.RuntimeDirectoryPreserve"] == ["yes"]  # consumers outlive a stopped daemon
    assert s["Service.ConfigurationDirectoryMode"] == ["0750"]
    assert s["Service.StateDirectoryMode"] == ["0700"]
    assert s["Service.UMask"] == ["0027"]
    assert s["Service.LoadCredential"] == ["google.json:/etc/keyward/google.json"]
    assert s["Service.Environment"] == ["KEYWARD_STATE_DIR=%S/keyward KEYWARD_RUNTIME_DIR=%t/keyward"]


def test_user_unit_when_read_runs_from_home_and_starts_with_session():
    s = _settings(USER_UNIT)

    assert s["Service.Type"] == ["notify"]
    assert s["Service.ExecStart"] == ["%h/.local/bin/keyward run"]
    assert s["Service.NoNewPrivileges"] == ["yes"]
    assert s["Install.WantedBy"] == ["default.target"]
    assert "Service.User" not in s


def _printed(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "keyward", "systemd", "unit", *args],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_systemd_unit_when_printed_names_this_installation_and_changes_nothing_else():
    printed = _printed()
    shipped = SYSTEM_UNIT.read_text()

    exec_start = _EXEC_START.search(printed).group(1)
    assert exec_start in (str(Path(sys.executable).parent / "keyward"), sys.executable)
    assert os.access(exec_start, os.X_OK)
    changed = [(a, b) for a, b in zip(shipped.splitlines(), printed.splitlines()) if a != b]
    assert len(printed.splitlines()) == len(shipped.splitlines())
    assert len(changed) == 1 and changed[0][1].endswith(" run --config /etc/keyward/keyward.toml")


@needs_analyze
def test_systemd_unit_when_printed_passes_verify_as_is(tmp_path: Path):
    unit = tmp_path / "keyward.service"
    unit.write_text(_printed())

    result = _run("verify", str(unit))

    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_analyze
def test_systemd_unit_user_when_printed_passes_user_verify_as_is(tmp_path: Path):
    unit = tmp_path / "keyward.service"
    unit.write_text(_printed("--user"))
    runtime = tmp_path / "xdg-runtime"
    runtime.mkdir(mode=0o700)

    result = _run("--user", "verify", str(unit), env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})

    assert "%h/.local/bin" not in unit.read_text()
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_systemd_unit_when_name_unknown_exits_2_listing_the_shipped_ones():
    result = subprocess.run([sys.executable, "-m", "keyward", "systemd", "unit", "nope.service"],
                            capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 2
    assert "nope.service" in result.stderr and "keyward.service" in result.stderr


def test_render_unit_when_path_has_spaces_and_percent_quotes_it_for_systemd():
    from keyward.cli.units import render_unit

    text = render_unit("[Service]\nExecStart=/x/keyward run --once\n", ["/opt/my tools/100%/keyward"])

    assert text == '[Service]\nExecStart="/opt/my tools/100%%/keyward" run --once\n'


def test_render_unit_when_a_line_runs_another_command_leaves_it_as_shipped():
    from keyward.cli.units import render_unit

    shipped = ("[Service]\nExecStartPre=-%h/.local/bin/keyward config validate\n"
               "ExecStart=/bin/systemctl try-restart my-app.service\nExecReload=/bin/kill -HUP $MAINPID\n")

    text = render_unit(shipped, ["/venv/bin/keyward"])

    assert text == shipped.replace("-%h/.local/bin/keyward", "-/venv/bin/keyward")
