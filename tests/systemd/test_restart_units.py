"""The shipped keyward-restart@.path / .service pair passes systemd's own checks and watches the
published file of the default pool in the manager's runtime directory (/run or $XDG_RUNTIME_DIR)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PATH_UNIT = REPO / "systemd" / "keyward-restart@.path"
SERVICE_UNIT = REPO / "systemd" / "keyward-restart@.service"
ANALYZE = shutil.which("systemd-analyze")


def _settings(unit: Path) -> dict[str, list[str]]:
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


def test_restart_units_watch_the_default_key_and_try_restart_the_instance():
    path, service = _settings(PATH_UNIT), _settings(SERVICE_UNIT)
    assert path["Path.PathChanged"] == ["%t/keyward/default.key"]
    assert path["Path.Unit"] == ["keyward-restart@%i.service"]
    assert service["Service.Type"] == ["oneshot"]
    assert service["Service.ExecStart"] == ["systemctl try-restart %i"]  # never restart a stopped unit


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)")
@pytest.mark.parametrize("instance", ["keyward-restart@my-app.service.path", "keyward-restart@my-app.service.service"])
def test_restart_units_when_instantiated_and_verified_print_nothing(tmp_path, instance):
    for unit in (PATH_UNIT, SERVICE_UNIT):
        shutil.copy(unit, tmp_path / unit.name)
    shutil.copy(PATH_UNIT if instance.endswith(".path") else SERVICE_UNIT, tmp_path / instance)
    (tmp_path / "my-app.service").write_text("[Service]\nExecStart=/bin/true\n")
    result = subprocess.run([ANALYZE, "verify", str(tmp_path / instance)], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)")
def test_alerts_timer_and_service_when_verified_print_nothing(tmp_path):
    import re
    import sys

    service = (REPO / "systemd" / "keyward-alerts.service").read_text()
    runnable, count = re.subn(r"^ExecStart=/usr/bin/keyward ", f"ExecStart={sys.executable} -m keyward ",
                              service, flags=re.MULTILINE)
    assert count == 1
    (tmp_path / "keyward-alerts.service").write_text(runnable)
    shutil.copy(REPO / "systemd" / "keyward-alerts.timer", tmp_path / "keyward-alerts.timer")
    for unit in ("keyward-alerts.timer", "keyward-alerts.service"):
        result = subprocess.run([ANALYZE, "verify", str(tmp_path / unit)], capture_output=True, text=True,
                                timeout=120, cwd=tmp_path)
        assert (result.returncode, result.stdout + result.stderr) == (0, ""), unit
