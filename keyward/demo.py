"""`keyward demo`: the whole system at work on one machine, in accelerated time.

It starts the emulator of Google's APIs, writes a configuration with three managed projects in one
pool (keys rotating every 10 to 15 seconds instead of 7 to 15 days), runs the real daemon as a
subprocess, and drives Gemini traffic through the emulator with whatever key the daemon published,
reporting usage and 429s back the way a real tool would. One project starts with a standard (AIza)
key made by hand, as many still have: keyward flags it and its first rotation migrates it to an
auth key. Another's real per-minute limit at Google is lower than the configuration says, as happens
when a project drops to a lower tier: its 429s teach keyward to switch away until the minute frees.
Nothing here is a shortcut around the daemon: what the screen shows is what it did.

Within the default duration (DEFAULT_DURATION) a viewer sees the published key switch, quota 429s,
and at least one rotation finish: new key verified and promoted, the old one kept for its grace
period, then retired.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TextIO

log = logging.getLogger(__name__)

MODEL = "gemini-2.5-flash"
PROJECTS = (("demo-alpha-1", "100000000001"), ("demo-bravo-2", "100000000002"), ("demo-charlie-3", "100000000003"))
LIMITS = {"rpm": 40, "tpm": 60000, "rpd": 5000}
# What Google really enforces for the last project: fewer requests a minute than the config says.
TIGHT_PROJECT, TIGHT_RPM = PROJECTS[2][0], 4
DEFAULT_DURATION = "45s"
REQUESTS_PER_SECOND = 2.2  # 132 a minute: more than the three projects' 120 together, so 429s happen

CONFIG = """\
# Written by `keyward demo`: accelerated time against the local emulator.
state_dir = "{state}"
runtime_dir = "{run}"
log_level = "info"

[rotation]
min_age = "10s"
max_age = "15s"
grace = "8s"
retry_backoff = "5s"
max_backoff = "30s"
operation_timeout = "30s"
retry_budget = "20s"

[usage]
poll_interval = "10s"
monitoring_lag = "2m"

[selection]
margin = 0.15
interval = "1s"

[daemon]
rotation_check = "2s"
heartbeat = "2s"
jitter = "0s"
ingest_socket = "{run}/ingest.sock"

[pools.default]
model = "{model}"

[[pools.default.sinks]]
type = "file"
path = "{run}/default.key"
format = "raw"
"""

PROJECT = """
[projects.{pid}]
number = "{number}"
managed = true
service_account = "keyward@{pid}.iam.gserviceaccount.com"

[projects.{pid}.limits."{model}"]
rpm = {rpm}
tpm = {tpm}
rpd = {rpd}
"""


class Demo:
    """One demo run; `run()` returns the exit code."""

    def __init__(self, state_dir: str | None = None, *, live: bool = True, out: TextIO | None = None):
        self.base = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="keyward-demo-"))
        self.live = live
        self.out = out or sys.stdout
        self.config_path = self.base / "keyward.toml"
        self.stop = threading.Event()
        self.counts = {"ok": 0, "429": 0, "other": 0, "switches": 0, "rotations": 0, "retired": 0}
        self.emulator = None
        self.daemon: subprocess.Popen | None = None

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=self.out, flush=True)

    def run(self, seconds: float | None) -> int:
        from keyward.emulator import Emulator

        self.base.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.emulator = Emulator().start()
        os.environ["KEYWARD_GOOGLE_EMULATOR_HOST"] = self.emulator.address
        previous = signal.signal(signal.SIGINT, lambda *_: self.stop.set())
        try:
            self._prepare()
            self._start_daemon()
            if not self._wait_for_key(30.0):
                self.say("the daemon published no key within 30 s; see " + str(self.base / "daemon.log"))
                return 1
            traffic = threading.Thread(target=self._traffic, name="demo-traffic", daemon=True)
            traffic.start()
            self._watch(seconds)
            self.stop.set()
            traffic.join(10)
            return self._finish()
        finally:
            signal.signal(signal.SIGINT, previous)
            self._stop_daemon()
            self.emulator.stop()
            os.environ.pop("KEYWARD_GOOGLE_EMULATOR_HOST", None)

    # Setting up ---------------------------------------------------------------------------------

    def _prepare(self) -> None:
        from keyward import inventory
        from keyward.context import Context

        state, run = self.base / "state", self.base / "run"
        text = CONFIG.format(state=state, run=run, model=MODEL)
        for pid, number in PROJECTS:
            real = dict(LIMITS, rpm=TIGHT_RPM) if pid == TIGHT_PROJECT else dict(LIMITS)
            self.emulator.add_project(pid, number, limits={MODEL: real})
            text += PROJECT.format(pid=pid, number=number, model=MODEL, **LIMITS)
        self.config_path.write_text(text)
        # A standard key made by hand long ago, as many projects still have one.
        legacy = self.emulator.create_manual_key(PROJECTS[0][0], kind="standard", display_name="made by hand")
        with Context.load(str(self.config_path)) as ctx:
            inventory.add_key(ctx, PROJECTS[0][0], legacy["keyString"])
        self.say(f"emulator on {self.emulator.address}; state in {self.base}")
        self.say(f"{PROJECTS[0][0]} starts with a standard (AIza) key: Gemini rejects those, keyward migrates it")
        self.say(f"{TIGHT_PROJECT} really allows {TIGHT_RPM} requests a minute, not the {LIMITS['rpm']} its "
                 "config says: expect 429s from it")

    def _start_daemon(self) -> None:
        env = {**os.environ, "KEYWARD_GOOGLE_EMULATOR_HOST": self.emulator.address}
        log_file = open(self.base / "daemon.log", "ab")
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "keyward", "--config", str(self.config_path), "run"],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, env=env,
        )
        log_file.close()
        self.say(f"daemon started (pid {self.daemon.pid}); its log: {self.base / 'daemon.log'}")

    def _wait_for_key(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stop.is_set():
            if self._current() is not None:
                return True
            if self.daemon.poll() is not None:
                return False
            self.stop.wait(0.2)
        return False

    def _current(self) -> str | None:
        from keyward.sinks.file import read_published_file

        return read_published_file(self.base / "run" / "default.key")

    # Traffic ------------------------------------------------------------------------------------

    def _traffic(self) -> None:
        """Call Gemini with the published key and report what happened, as a well-behaved tool does."""
        from keyward import client
        from keyward.google.gemini import GeminiHttpError, generate_content

        n = 0
        while not self.stop.wait(1.0 / REQUESTS_PER_SECOND):
            key = self._current()
            if key is None:
                continue
            n += 1
            prompt = f"Write one line about keys, number {n}. " + "lorem ipsum " * (n % 40)
            try:
                answer = generate_content(key, MODEL, prompt)
            except GeminiHttpError as exc:
                self.counts["429" if exc.status == 429 else "other"] += 1
                self._safely(client.report_error, exc.status, exc.body, key=key, model=MODEL)
                continue
            except Exception as exc:  # the emulator going away at the end, say
                log.debug("demo request failed: %s", exc)
                continue
            meta = answer.get("usageMetadata", {})
            self.counts["ok"] += 1
            self._safely(client.report, key=key, model=MODEL, requests=1,
                         input_tokens=int(meta.get("promptTokenCount", 0)),
                         output_tokens=int(meta.get("candidatesTokenCount", 0)))

    def _safely(self, fn, *args, **kwargs) -> None:
        try:
            fn(*args, config_path=str(self.config_path), **kwargs)
        except Exception as exc:
            self.say(f"report failed: {exc}")

    # Watching -----------------------------------------------------------------------------------

    def _watch(self, seconds: float | None) -> None:
        from keyward.context import Context
        from keyward.keystrings import mask

        deadline = None if seconds is None else time.monotonic() + seconds
        last = self._current()
        seen_events = 0
        with Context.load(str(self.config_path)) as ctx:
            seen_events = self._max_event_id(ctx)
            while not self.stop.is_set() and (deadline is None or time.monotonic() < deadline):
                if self.daemon.poll() is not None:
                    self.say(f"the daemon exited with {self.daemon.returncode}; see {self.base / 'daemon.log'}")
                    return
                current = self._current()
                if current != last:
                    self.counts["switches"] += 1
                    self.say(f"published key changed: {mask(last)} -> {mask(current)}")
                    last = current
                seen_events = self._print_events(ctx, seen_events)
                if self.live:
                    self._draw(ctx)
                self.stop.wait(1.0)

    def _max_event_id(self, ctx) -> int:
        from keyward.storage import store as q

        with ctx.store.read() as s:
            events = q.recent_events(s, 1)
            return events[0].id if events else 0

    def _print_events(self, ctx, after: int) -> int:
        from keyward.storage import store as q

        interesting = ("rotation.", "selection.", "key.")
        with ctx.store.read() as s:
            events = [e for e in reversed(q.recent_events(s, 50)) if e.id > after]
        for event in events:
            if event.kind == "rotation.done":
                self.counts["rotations"] += 1
            elif event.kind == "key.retired":
                self.counts["retired"] += 1
            if event.kind.startswith(interesting):
                where = " ".join(x for x in (event.project_id, event.key_id) if x)
                self.say(f"{event.kind}: {where}: {event.message}")
            after = max(after, event.id)
        return after

    def _draw(self, ctx) -> None:
        from keyward.cli.status_screen import render
        from keyward.status import build_status

        screen = render(build_status(ctx), ctx.now())
        c = self.counts
        self.out.write("\x1b[H\x1b[2J" + screen + f"\n\ntraffic: {c['ok']} ok, {c['429']} quota 429s, "
                       f"{c['other']} other errors; published key changed {c['switches']} time(s); "
                       f"{c['rotations']} rotation(s) done, {c['retired']} key(s) retired\n")
        self.out.flush()

    # Ending -------------------------------------------------------------------------------------

    def _stop_daemon(self) -> None:
        if self.daemon is None or self.daemon.poll() is not None:
            return
        self.daemon.send_signal(signal.SIGTERM)
        try:
            self.daemon.wait(15)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()

    def _finish(self) -> int:
        self._stop_daemon()
        c = self.counts
        self.say(f"done: {c['ok']} requests served, {c['429']} quota 429s, published key changed "
                 f"{c['switches']} time(s), {c['rotations']} rotation(s) done, {c['retired']} key(s) retired")
        self.say(f"state kept in {self.base}; inspect it with: keyward --config {self.config_path} status")
        return 0 if self.daemon.returncode == 0 else 1
