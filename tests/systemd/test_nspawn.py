"""The shipped units under a real systemd: Debian 12 booted in systemd-nspawn, keyward installed
from its wheel the way the README says, talking to the emulator on the host over real HTTP.

One container serves the whole module; the tests run in file order, each one step of a service's
life (start, status, reload, readers, SIGKILL, hardening, stop), then the user unit. Where nspawn
cannot run (not root, no systemd-nspawn or debootstrap, no Debian mirror), the tests skip with the
reason on a developer's machine and fail with it in CI ($CI set), so CI never passes by silence.
The first run builds the root file system with debootstrap (about a minute) and caches it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import nspawn

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"

# The README's system install, line for line, except that pip installs the wheel built from this
# tree instead of reaching PyPI (test_readme_install_steps_are_the_ones_tested holds them equal).
README_STEPS = [
    "python3 -m venv /opt/keyward",
    "ln -s /opt/keyward/bin/keyward /usr/local/bin/keyward",
    "useradd --system --home-dir /var/lib/keyward --shell /usr/sbin/nologin keyward",
    "install -d -m 0750 -o root -g keyward /etc/keyward",
    "install -m 0640 -o root -g keyward keyward.toml /etc/keyward/keyward.toml",
    "install -m 0600 -o root -g root google.json /etc/keyward/google.json",
    "keyward systemd unit > /etc/systemd/system/keyward.service",
    "systemctl daemon-reload && systemctl enable --now keyward",
    "usermod -aG keyward my-app",
]
USER_STEPS = [
    "python3 -m venv ~/.local/share/keyward-venv",
    "~/.local/share/keyward-venv/bin/keyward systemd unit --user > ~/.config/systemd/user/keyward.service",
    "systemctl --user daemon-reload && systemctl --user enable --now keyward",
    'loginctl enable-linger "$USER"',
]

# Short intervals so the steps below take seconds; a reload reschedules every job a full
# interval ahead, so rotation_check bounds how soon a project added by reload gets its first key.
SYSTEM_CONFIG = """\
[selection]
interval = "2s"

[daemon]
heartbeat = "2s"
rotation_check = "5s"
jitter = "0s"

[[pools.default.sinks]]
type = "file"
path = "/run/keyward/default.key"
mode = "0640"

[[pools.default.sinks]]
type = "file"
path = "/run/keyward/default.env"
format = "env"
mode = "0640"
"""

USER_CONFIG = """\
[selection]
interval = "2s"

[daemon]
heartbeat = "2s"

[[pools.default.sinks]]
type = "keyring"
backend = "keyring.backends.SecretService.Keyring"

[projects.user-proj-1]
number = "300000000001"
managed = true
service_account = "keyward@user-proj-1.iam.gserviceaccount.com"
"""

# A program of the reader's: its unit takes the key from EnvironmentFile= and checks that
# `keyward current`, run as itself (a member of group keyward), prints the same key.
CONSUMER_UNIT = """\
[Unit]
Description=a program that uses the published key

[Service]
Type=oneshot
User=my-app
EnvironmentFile=/run/keyward/default.env
ExecStart=/usr/local/bin/consumer-check
"""
CONSUMER_CHECK = """\
#!/bin/sh
set -eu
test -n "$GEMINI_API_KEY"
test "$(keyward current)" = "$GEMINI_API_KEY"
"""


def _project(pid: str, number: str) -> str:
    return (f'\n[projects.{pid}]\nnumber = "{number}"\nmanaged = true\n'
            f'service_account = "keyward@{pid}.iam.gserviceaccount.com"\n')


def _wait(what: str, predicate, timeout: float = 30.0, interval: float = 0.3):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"systemd-nspawn cannot run here, and CI needs it: {reason}", pytrace=False)
    pytest.skip(f"systemd-nspawn cannot run here: {reason}")


@pytest.fixture(scope="module")
def emulator():
    from keyward.emulator import Emulator

    emu = Emulator().start()
    for pid, number in (("sys-proj-1", "200000000001"), ("sys-proj-2", "200000000002"),
                        ("user-proj-1", "300000000001")):
        emu.add_project(pid, number)
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    """keyward's wheel, built from this tree, and its dependencies' wheels."""
    out = tmp_path_factory.mktemp("wheels")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(out),
                             str(REPO)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(out.glob("keyward-*.whl"))
    out.chmod(0o755)  # bound into the container, where the user unit's owner installs from it too
    for wheel in out.iterdir():
        wheel.chmod(0o644)
    return out


@pytest.fixture(scope="module")
def machine(tmp_path_factory, wheels):
    reason = nspawn.unavailable()
    if reason:
        _unavailable(reason)
    logs = tmp_path_factory.mktemp("nspawn")
    try:
        root = nspawn.rootfs(logs / "debootstrap.log")
    except nspawn.NspawnUnavailable as exc:
        _unavailable(str(exc))
    box = nspawn.Machine(root, f"kwtest-{os.getpid()}", logs / "console.log", {str(wheels): "/wheels"})
    try:
        box.wait_booted()
    except nspawn.NspawnUnavailable as exc:
        box.stop()
        _unavailable(str(exc))
    yield box
    box.stop()


@pytest.fixture(scope="module")
def service(machine, emulator):
    """keyward installed and started as the README says; returns how long that took."""
    pip = "/opt/keyward/bin/pip install --quiet --no-index --find-links /wheels keyward"
    steps = README_STEPS[:1] + [pip] + README_STEPS[1:]
    steps.insert(steps.index(README_STEPS[7]),  # the test's one addition: Google is the emulator
                 "mkdir -p /etc/systemd/system/keyward.service.d && printf '[Service]\\nEnvironment="
                 f"KEYWARD_GOOGLE_EMULATOR_HOST={emulator.address}\\n' > "
                 "/etc/systemd/system/keyward.service.d/emulator.conf")
    setup = (f"cd /root && useradd --create-home my-app && cat > keyward.toml <<'EOF'\n"
             f"{SYSTEM_CONFIG}{_project('sys-proj-1', '200000000001')}EOF\n"
             "echo '{}' > google.json\n")
    started = time.monotonic()
    machine.run(setup + "\n".join(steps), timeout=300)
    return {"seconds": time.monotonic() - started}


def _current(machine, user: str = "my-app") -> str:
    return machine.run("keyward current", user=user).stdout.strip()


def _status(machine) -> dict:
    return json.loads(machine.run("keyward status --json", user="my-app").stdout)


def test_readme_install_steps_are_the_ones_tested():
    text = README.read_text()
    for step in README_STEPS + USER_STEPS:
        assert step in text, f"README no longer says: {step}"


def test_system_unit_when_started_as_installed_is_active_and_publishes_a_key(machine, service, emulator):
    props = machine.show("keyward", "ActiveState", "SubState", "Result", "ExecMainStatus")
    assert props["ActiveState"] == "active" and props["SubState"] == "running", props

    # a fresh install has no key yet: the first pass, right after READY, creates and publishes one
    _wait("the first key to be published", lambda: machine.run("test -s /run/keyward/default.key",
                                                               check=False).returncode == 0)
    key = _current(machine)

    assert key.startswith("AQ.") and emulator.key_string_valid(key)
    journal = machine.run("journalctl --no-pager -o cat -u keyward").stdout
    assert "keyward daemon ready" in journal
    # systemd complains on every start when the directory modes differ from the unit's
    for complaint in ("already exists but the mode is different", "Failed at step EXEC", "203/EXEC"):
        assert complaint not in journal, journal[-2000:]


def test_system_unit_when_running_sends_status_and_watchdog_pings_to_systemd(machine, service):
    first = machine.show("keyward", "StatusText", "WatchdogTimestampMonotonic", "WatchdogUSec")
    assert "publish" in first["StatusText"], first
    assert first["WatchdogUSec"] == "1min"

    _wait("a newer watchdog ping", lambda: int(machine.show("keyward", "WatchdogTimestampMonotonic")
                                              ["WatchdogTimestampMonotonic"]) > int(first["WatchdogTimestampMonotonic"]),
          timeout=20)


def test_system_unit_when_reloaded_picks_up_a_new_project(machine, service):
    machine.run(f"cat >> /etc/keyward/keyward.toml <<'EOF'\n{_project('sys-proj-2', '200000000002')}EOF\n"
                "systemctl reload keyward")

    def has_key() -> bool:
        projects = {p["project_id"]: p for p in _status(machine)["projects"]}
        return "sys-proj-2" in projects and any(k["state"] == "active" for k in projects["sys-proj-2"]["keys"])

    _wait("sys-proj-2 with an active key in `keyward status`", has_key, timeout=30)
    assert machine.show("keyward", "ActiveState")["ActiveState"] == "active"


def test_system_unit_when_started_with_a_key_in_the_database_returns_with_it_published(machine, service):
    machine.run("systemctl stop keyward && rm -f /run/keyward/default.key /run/keyward/default.env")

    # READY comes once every pool that has a usable key has it published
    machine.run("systemctl start keyward && test -s /run/keyward/default.key && test -s /run/keyward/default.env")

    assert _current(machine).startswith("AQ.")


def test_member_of_group_keyward_when_reading_gets_the_key_by_current_and_environment_file(machine, service):
    machine.run(f"cat > /usr/local/bin/consumer-check <<'EOF'\n{CONSUMER_CHECK}EOF\n"
                "chmod 0755 /usr/local/bin/consumer-check\n"
                f"cat > /etc/systemd/system/consumer.service <<'EOF'\n{CONSUMER_UNIT}EOF\n"
                "systemctl daemon-reload && systemctl start consumer.service")

    assert machine.show("consumer", "Result")["Result"] == "success"
    assert machine.run("keyward current", user="nobody", check=False).returncode != 0  # not in the group


def test_system_unit_when_main_process_sigkilled_is_restarted(machine, service):
    before = machine.show("keyward", "MainPID", "NRestarts")

    machine.run("systemctl kill --signal=KILL keyward")

    def restarted():
        now = machine.show("keyward", "MainPID", "NRestarts", "ActiveState")
        return (now["ActiveState"] == "active" and now["MainPID"] not in ("0", before["MainPID"])
                and int(now["NRestarts"]) == int(before["NRestarts"]) + 1)

    _wait("systemd to restart keyward (RestartSec=5s)", restarted, timeout=30)
    assert _current(machine).startswith("AQ.")


def test_system_unit_when_scored_live_has_the_exposure_the_readme_documents(machine, service):
    documented = re.search(r"exposure (\d+\.\d+) by `systemd-analyze security`", README.read_text())
    assert documented, "README no longer quotes the exposure score"

    out = machine.run("systemd-analyze security keyward.service").stdout

    score = re.search(r"Overall exposure level for keyward\.service: (\d+\.\d+)", out)
    assert score, out[-2000:]
    assert float(score.group(1)) == float(documented.group(1)), out[-2000:]


def test_system_unit_when_stopped_stops_within_10s_and_readers_still_start(machine, service):
    key = _current(machine)
    started = time.monotonic()

    machine.run("systemctl stop keyward")

    took = time.monotonic() - started
    props = machine.show("keyward", "ActiveState", "Result")
    assert took < 10 and props == {"ActiveState": "inactive", "Result": "success"}, (took, props)
    # the runtime directory outlives the daemon: readers keep the last key
    assert _current(machine) == key
    machine.run("systemctl restart consumer.service")
    assert machine.show("consumer", "Result")["Result"] == "success"
    # a report with no daemon to take it is spooled for the next contact, and says why
    report = machine.run("keyward report --pool default --requests 1", user="my-app", check=False)
    assert report.returncode == 0, report.stderr
    assert "via the spool" in report.stdout
    assert "no keyward daemon took the report" in report.stderr
    assert "is the keyward service running?" in report.stderr


def test_reader_when_nothing_is_published_hears_so_rather_than_a_database_error(machine, service):
    machine.run("rm -rf /run/keyward")  # as after a reboot, before the service starts

    result = machine.run("keyward current", user="my-app", check=False)

    assert result.returncode == 1 and result.stdout == ""
    assert "no key published for pool 'default'" in result.stderr
    assert "is the keyward service running?" in result.stderr


def test_user_unit_with_lingering_publishes_into_the_users_keyring(machine, emulator, service):
    machine.run("useradd --create-home dev && loginctl enable-linger dev && "
                "for i in $(seq 100); do [ -S /run/user/$(id -u dev)/bus ] && break; sleep 0.1; done; "
                "test -S /run/user/$(id -u dev)/bus")
    venv = "~/.local/share/keyward-venv"
    machine.run(
        f"{USER_STEPS[0]}\n{venv}/bin/pip install --quiet --no-index --find-links /wheels keyward\n"
        # a desktop session unlocks the login keyring at login; here a password does it
        "printf '%s' session-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null\n"
        f"mkdir -p ~/.config/keyward ~/.config/systemd/user/keyward.service.d\n"
        f"cat > ~/.config/keyward/keyward.toml <<'EOF'\n{USER_CONFIG}EOF\n"
        f"{USER_STEPS[1]}\n"
        "printf '[Service]\\nEnvironment=KEYWARD_GOOGLE_EMULATOR_HOST=%s\\n' "
        f"{shlex.quote(emulator.address)} > ~/.config/systemd/user/keyward.service.d/emulator.conf\n"
        f"{USER_STEPS[2]}", user="dev", timeout=300)

    assert machine.show("keyward", "ActiveState", user="dev")["ActiveState"] == "active"
    read = f"{venv}/bin/python -c 'import keyring; print(keyring.get_password(\"keyward\", \"default\") or \"\")'"
    key = _wait("the key in dev's keyring (the first pass creates it)",
                lambda: machine.run(read, user="dev").stdout.strip())
    assert key.startswith("AQ.") and emulator.key_string_valid(key)
    assert _project_of(emulator, key) == "300000000001"  # user-proj-1's, not the system service's


def _project_of(emulator, key_string: str) -> str | None:
    with emulator.state.lock:
        return next((k.project_number for k in emulator.state.keys.values() if k.key_string == key_string), None)
