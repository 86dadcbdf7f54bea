"""Run the real daemon as a subprocess against the emulator, and wait on conditions with deadlines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

MODEL = "gemini-2.5-flash"


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    """Return the condition's first truthy value; fail naming `what` when the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def write_config(base: Path, projects: list[tuple[str, str]], *, extra: str = "", rotation: str = "",
                 managed: bool = True, limits: dict | None = None) -> Path:
    """Write a daemon configuration under `base` with fast timers; return its path."""
    limits = limits or {"rpm": 100, "tpm": 1_000_000, "rpd": 10_000}
    text = f"""
state_dir = "{base / 'state'}"
runtime_dir = "{base / 'run'}"

[rotation]
min_age = "1h"
max_age = "2h"
grace = "1h"
retry_budget = "5s"
operation_timeout = "20s"
{rotation}

[usage]
poll_interval = "10s"

[selection]
interval = "1s"

[daemon]
rotation_check = "1s"
heartbeat = "1s"
jitter = "0s"
ingest_socket = ""
{extra}

[pools.default]
model = "{MODEL}"

[[pools.default.sinks]]
type = "file"
path = "{base / 'run' / 'default.key'}"
"""
    for pid, number in projects:
        text += f"""
[projects.{pid}]
number = "{number}"
managed = {"true" if managed else "false"}
{f'service_account = "keyward@{pid}.iam.gserviceaccount.com"' if managed else ''}

[projects.{pid}.limits."{MODEL}"]
rpm = {limits['rpm']}
tpm = {limits['tpm']}
rpd = {limits['rpd']}
"""
    path = base / "keyward.toml"
    base.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


class DaemonProcess:
    """`keyward run` in a subprocess, its stderr in a file for assertions."""

    def __init__(self, config: Path, env: dict[str, str], *args: str):
        self.log_path = config.parent / f"daemon-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "keyward", "--config", str(config), "run", *args],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
