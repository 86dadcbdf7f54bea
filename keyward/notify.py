"""Tell systemd how the daemon is doing (the sd_notify protocol), without libsystemd.

The protocol is one datagram of `KEY=VALUE` lines sent to the AF_UNIX socket named by
`$NOTIFY_SOCKET` (a leading `@` means the Linux abstract namespace). When the variable is unset the
daemon is not supervised by systemd and every call does nothing.

Promise: no method here raises and none blocks. Monitoring must never hide or break the main work, so a
missing or dead socket is logged at debug level and ignored, and a socket whose reader stopped reading
(its queue full) drops the message instead of stalling the daemon's main loop, where SIGTERM is
acted on.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Send readiness, status, reload, stop and watchdog messages to systemd."""

    def __init__(
        self,
        socket_path: str | None,
        *,
        watchdog_usec: int | None = None,
        watchdog_pid: int | None = None,
    ):
        self._address = _address_of(socket_path) if socket_path else None
        self._socket_path = socket_path
        self._watchdog_usec = watchdog_usec
        self._watchdog_pid = watchdog_pid

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        """Build a notifier from `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`.

        Malformed watchdog values are treated as absent (logged at debug), never raised.
        """
        env = os.environ if env is None else env
        return cls(
            env.get("NOTIFY_SOCKET") or None,
            watchdog_usec=_positive_int(env, "WATCHDOG_USEC"),
            watchdog_pid=_positive_int(env, "WATCHDOG_PID"),
        )

    @property
    def enabled(self) -> bool:
        """True when systemd asked for notifications (`$NOTIFY_SOCKET` was set)."""
        return self._address is not None

    def __repr__(self) -> str:
        return f"Notifier(socket={self._socket_path!r}, watchdog_usec={self._watchdog_usec!r})"

    def ready(self, status: str | None = None) -> bool:
        """Report that start-up finished; systemd then considers the unit active."""
        fields = {"READY": "1"}
        if status is not None:
            fields["STATUS"] = status
        return self._send(fields)

    def status(self, text: str) -> bool:
        """Set the one-line status shown by `systemctl status`."""
        return self._send({"STATUS": text})

    def reloading(self) -> bool:
        """Report that a configuration reload started; call `ready()` again when it is done.

        MONOTONIC_USEC is required with Type=notify-reload (systemd 253+) and ignored by older ones.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self._send({"RELOADING": "1", "MONOTONIC_USEC": str(usec)})

    def stopping(self) -> bool:
        """Report that shutdown began, so systemd does not mistake it for a hang."""
        return self._send({"STOPPING": "1"})

    def watchdog(self) -> bool:
        """Ping the watchdog; systemd restarts the unit if pings stop for WatchdogSec."""
        return self._send({"WATCHDOG": "1"})

    def watchdog_interval(self) -> float | None:
        """Return how often to ping, in seconds (half of WATCHDOG_USEC), or None if not asked.

        WATCHDOG_PID, when set, names the process the watchdog is meant for; any other process
        (a child that inherited the environment) must not ping.
        """
        if not self.enabled or not self._watchdog_usec:
            return None
        if self._watchdog_pid is not None and self._watchdog_pid != os.getpid():
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def _send(self, fields: Mapping[str, str]) -> bool:
        """Send one datagram; return True if it went out, False if disabled or it failed."""
        if self._address is None:
            return False
        payload = "".join(f"{k}={v}\n" for k, v in fields.items()).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)  # a full queue raises BlockingIOError instead of waiting
                sock.connect(self._address)
                sock.send(payload)
        except OSError as exc:
            log.debug("could not notify systemd at %s: %s", self._socket_path, exc)
            return False
        return True


def _address_of(path: str) -> str:
    """Turn a `$NOTIFY_SOCKET` value into a socket address (abstract names start with NUL)."""
    if path.startswith("@"):
        return "\0" + path[1:]
    return path


def _positive_int(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        log.debug("ignoring $%s: not an integer (%r)", name, raw)
        return None
    return value if value > 0 else None
