"""A real, private Secret Service for tests: a session D-Bus daemon plus gnome-keyring-daemon.

`secret_service_session()` starts both in fresh XDG directories, unlocks a new login keyring with a
throwaway password, waits until `org.freedesktop.secrets` answers, yields the environment a client
needs, and kills both daemons afterwards. The bus is configured without service activation, so no
other (locked) keyring daemon can be started behind the test's back. The test process's own
environment is left alone unless `apply_env=True`.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing

BINARIES = ("dbus-daemon", "gnome-keyring-daemon")
SECRETS_NAME = "org.freedesktop.secrets"
BACKEND = "keyring.backends.SecretService.Keyring"

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


def missing_binaries() -> list[str]:
    """Return the daemons this harness needs that are not on PATH (empty when it can run)."""
    return [name for name in BINARIES if shutil.which(name) is None]


def _read_line(proc: subprocess.Popen[bytes], deadline: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        buf = b""
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                raise RuntimeError("dbus-daemon did not print its address in time")
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"dbus-daemon exited early with status {proc.wait()}")
            buf += chunk
    return buf.split(b"\n", 1)[0].decode()


def _name_has_owner(address: str, name: str) -> bool:
    from jeepney import DBus
    from jeepney.io.blocking import open_dbus_connection

    with closing(open_dbus_connection(address)) as conn:
        reply = conn.send_and_get_reply(DBus().NameHasOwner(name), timeout=2)
    return bool(reply.body[0])


def _wait_for_secrets(address: str, keyring_proc: subprocess.Popen[bytes], deadline: float) -> None:
    while not _name_has_owner(address, SECRETS_NAME):
        if keyring_proc.poll() is not None:
            raise RuntimeError(f"gnome-keyring-daemon exited early with status {keyring_proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError("gnome-keyring-daemon did not claim org.freedesktop.secrets in time")
        time.sleep(0.02)  # polling a condition with a deadline, not synchronising on a duration


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.kill()
    proc.wait(timeout=10)


@contextlib.contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def secret_service_session(
    password: str = "keyward-test-password",
    *,
    secrets: bool = True,
    apply_env: bool = False,
    timeout: float = 15.0,
) -> Iterator[dict[str, str]]:
    """Run a private Secret Service; yield the environment variables that reach it.

    With `secrets=False` only the bus runs: a session where no Secret Service exists.
    The dict holds DBUS_SESSION_BUS_ADDRESS, the XDG_* directories, GNOME_KEYRING_CONTROL and
    PYTHON_KEYRING_BACKEND. With `apply_env=True` they are also set in os.environ while the
    session lasts and restored afterwards. Raise RuntimeError if a daemon does not come up.
    """
    root = tempfile.mkdtemp(prefix="keyward-secret-service-")
    dirs = {name: os.path.join(root, name) for name in ("data", "config", "cache", "runtime", "control")}
    for path in dirs.values():
        os.mkdir(path, 0o700)
    bus_config = os.path.join(root, "bus.conf")
    with open(bus_config, "w", encoding="utf-8") as fh:
        fh.write(_BUS_CONFIG.format(socket=os.path.join(dirs["runtime"], "bus")))
    env = {
        "XDG_DATA_HOME": dirs["data"],
        "XDG_CONFIG_HOME": dirs["config"],
        "XDG_CACHE_HOME": dirs["cache"],
        "XDG_RUNTIME_DIR": dirs["runtime"],
    }
    deadline = time.monotonic() + timeout
    bus = keyring_daemon = None
    try:
        with open(os.path.join(root, "dbus.log"), "wb") as bus_log:
            bus = subprocess.Popen(
                ["dbus-daemon", f"--config-file={bus_config}", "--nofork", "--print-address=1"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=bus_log,
                env={**os.environ, **env},
            )
        env["DBUS_SESSION_BUS_ADDRESS"] = _read_line(bus, deadline)
        if secrets:
            keyring_daemon = _start_keyring(password, dirs["control"], env, root, deadline)
            env["GNOME_KEYRING_CONTROL"] = dirs["control"]
        env["PYTHON_KEYRING_BACKEND"] = BACKEND
        with _environ(env) if apply_env else contextlib.nullcontext():
            yield dict(env)
    finally:
        _stop(keyring_daemon)
        _stop(bus)
        if bus is not None and bus.stdout is not None:
            bus.stdout.close()
        shutil.rmtree(root, ignore_errors=True)


def _start_keyring(
    password: str, control: str, env: dict[str, str], root: str, deadline: float
) -> subprocess.Popen[bytes]:
    with open(os.path.join(root, "gnome-keyring.log"), "wb") as keyring_log:
        keyring_daemon = subprocess.Popen(
            ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets",
             f"--control-directory={control}"],
            stdin=subprocess.PIPE, stdout=keyring_log, stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    try:
        assert keyring_daemon.stdin is not None
        keyring_daemon.stdin.write(password.encode())
        keyring_daemon.stdin.close()
        _wait_for_secrets(env["DBUS_SESSION_BUS_ADDRESS"], keyring_daemon, deadline)
    except BaseException:
        _stop(keyring_daemon)
        raise
    return keyring_daemon


def lock_default_collection(env: dict[str, str]) -> None:
    """Lock the session's default collection, as a screen lock or `secret-tool lock` would."""
    import secretstorage

    with _environ({"DBUS_SESSION_BUS_ADDRESS": env["DBUS_SESSION_BUS_ADDRESS"]}):
        with closing(secretstorage.dbus_init()) as conn:
            collection = secretstorage.get_default_collection(conn)
            collection.lock()
            if not collection.is_locked():
                raise RuntimeError("the default collection did not lock")
