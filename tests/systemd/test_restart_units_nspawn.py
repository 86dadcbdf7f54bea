"""keyward-restart@.path under a real systemd (Debian 12 in systemd-nspawn, see support/nspawn.py):
replacing the published file the way the file sink does (rename over it) restarts the running
app, leaves a stopped one stopped, and a drop-in moves the watch to another pool's file."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

nspawn = pytest.importorskip("support.nspawn", reason="the nspawn harness is not in this tree")

REPO = Path(__file__).resolve().parents[2]

APP = """\
[Service]
ExecStart=/bin/sh -c 'echo started >> /var/tmp/app-starts; exec sleep infinity'
"""


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    why = nspawn.unavailable()
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    logs = tmp_path_factory.mktemp("nspawn")
    try:
        root = nspawn.rootfs(logs / "debootstrap.log")
        m = nspawn.Machine(root, f"kw-restart-{os.getpid()}", logs / "boot.log", {str(REPO / "systemd"): "/mnt/units"})
        m.wait_booted()
    except nspawn.NspawnUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    yield m
    m.stop()


def _publish(machine, name: str = "default") -> None:
    """What the file sink does: a temp file in the same directory, renamed over the key file."""
    machine.run(f"install -d -m 0750 /run/keyward && t=$(mktemp /run/keyward/.keyward-tmp-XXXX) && "
                f"head -c 24 /dev/urandom | base64 > $t && mv -f $t /run/keyward/{name}.key")


def _starts(machine) -> int:
    return int(machine.run("cat /var/tmp/app-starts 2>/dev/null | wc -l").stdout.strip())


def _wait(predicate, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _runs(machine) -> str:
    return machine.show("keyward-restart@my-app.service.service", "ExecMainExitTimestampMonotonic")[
        "ExecMainExitTimestampMonotonic"]


def test_restart_path_unit_when_key_replaced_restarts_running_app_only(machine):
    machine.run("install -m 0644 /mnt/units/keyward-restart@.path /mnt/units/keyward-restart@.service "
                "/etc/systemd/system/")
    machine.run(f"cat > /etc/systemd/system/my-app.service <<'EOF'\n{APP}EOF")
    _publish(machine)
    machine.run("systemctl daemon-reload && systemctl start my-app && "
                "systemctl enable --now keyward-restart@my-app.service.path")
    _wait(lambda: _starts(machine) == 1, "my-app to start")
    pid = machine.show("my-app.service", "MainPID")["MainPID"]

    _publish(machine)
    _wait(lambda: _starts(machine) == 2, "my-app to be restarted after the key changed")
    assert machine.show("my-app.service", "MainPID")["MainPID"] != pid

    machine.run("systemctl stop my-app")
    before = _runs(machine)
    _publish(machine)
    _wait(lambda: _runs(machine) != before, "the restart oneshot to run again")
    assert machine.show("my-app.service", "ActiveState")["ActiveState"] == "inactive"  # try-restart
    assert _starts(machine) == 2


def test_restart_path_unit_when_dropin_names_another_pool_watches_only_that_file(machine):
    machine.run("systemctl start my-app && install -d /etc/systemd/system/keyward-restart@my-app.service.path.d "
                "&& printf '[Path]\\nPathChanged=\\nPathChanged=/run/keyward/other.key\\n' > "
                "/etc/systemd/system/keyward-restart@my-app.service.path.d/pool.conf && "
                "systemctl daemon-reload && systemctl restart keyward-restart@my-app.service.path")
    _wait(lambda: _starts(machine) == 3, "my-app to start again")
    before = _runs(machine)
    _publish(machine, "default")
    _publish(machine, "other")
    _wait(lambda: _starts(machine) == 4, "my-app to be restarted for the other pool's key")
    # my-app starts before the oneshot's try-restart returns, so its exit time comes a moment later
    _wait(lambda: _runs(machine) != before, "the restart unit to record its run")
    _wait(lambda: machine.show("keyward-restart@my-app.service.service", "ActiveState")["ActiveState"]
          == "inactive", "the restart unit to finish")
    runs = _runs(machine)
    _publish(machine, "default")
    time.sleep(2)  # a change that must NOT trigger: the only way to see nothing happen is a window
    assert _runs(machine) == runs and _starts(machine) == 4
