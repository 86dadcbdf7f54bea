"""`keyward exec` as a real process over a real program: the program sees a new key within 2 s of
a switch, signals reach it, and its exit status becomes keyward's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from keyward.sinks.file import FileSink
from support.fakes import fake_auth_key
from support.processes import alive, state

KEYWARD = str(Path(sys.executable).with_name("keyward"))

CHILD = textwrap.dedent("""
    import os, signal, sys, time
    out = sys.argv[1]
    def note(text):
        with open(out, "a") as fh:
            fh.write(text + "\\n")
    def on_signal(signum, frame):
        note(f"signal {signal.Signals(signum).name} {os.getpid()}")
        if signum == signal.SIGTERM and os.environ.get("EXIT_ON_TERM") != "ignore":
            sys.exit(int(os.environ.get("EXIT_ON_TERM", "0")))
    for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP):
        signal.signal(s, on_signal)
    note(f"start {os.getpid()} {os.environ.get('GEMINI_API_KEY')} {os.environ.get('GOOGLE_API_KEY')} "
         f"{os.environ.get('KEYWARD_POOL')}")
    if os.environ.get("EXIT_NOW"):
        sys.exit(int(os.environ["EXIT_NOW"]))
    while True:
        time.sleep(0.05)
""")


class Setup:
    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.key_path = tmp_path / "run" / "default.key"
        self.config = tmp_path / "keyward.toml"
        self.config.write_text(f'[[pools.default.sinks]]\ntype = "file"\npath = "{self.key_path}"\n')
        self.out = tmp_path / "child.out"
        self.child = tmp_path / "child.py"
        self.child.write_text(CHILD)
        self.sink = FileSink("default", path=str(self.key_path))
        self.stderr = open(tmp_path / "keyward.err", "wb")  # closed by the fixture
        self.env = {**os.environ, "KEYWARD_STATE_DIR": str(tmp_path / "state"),
                    "KEYWARD_RUNTIME_DIR": str(tmp_path / "run"), "GOOGLE_API_KEY": "stale-from-the-shell"}

    def publish(self) -> str:
        key = fake_auth_key()
        self.sink.publish(key, "k")
        return key

    def start(self, *options: str, **env: str) -> subprocess.Popen:
        return subprocess.Popen([KEYWARD, "--config", str(self.config), "exec", *options, "--",
                                 sys.executable, str(self.child), str(self.out)],
                                env={**self.env, **env}, stderr=self.stderr)

    def lines(self) -> list[list[str]]:
        try:
            return [line.split() for line in self.out.read_text().splitlines()]
        except FileNotFoundError:
            return []

    def wait_for(self, predicate, timeout: float = 10.0) -> list[list[str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.lines()
            if predicate(lines):
                return lines
            time.sleep(0.02)
        raise AssertionError(f"condition not met within {timeout}s; child wrote {self.lines()}; keyward said "
                             f"{(self.tmp / 'keyward.err').read_text()}")


@pytest.fixture
def setup(tmp_path):
    s = Setup(tmp_path)
    yield s
    s.stderr.close()


def _stop(proc: subprocess.Popen, setup: Setup) -> None:
    """Stop `keyward exec` the way a user would (SIGTERM, which it passes on), then make sure no
    child it started outlives the test: a child that ignores SIGTERM would otherwise stay behind."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for line in setup.lines():
        if line[:1] == ["start"]:
            try:
                with open(f"/proc/{line[1]}/cmdline", "rb") as fh:
                    ours = str(setup.child).encode() in fh.read()
                if ours:
                    os.kill(int(line[1]), signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError):
                pass


def test_exec_when_key_switches_restarts_child_with_new_key_within_two_seconds(setup):
    first = setup.publish()
    proc = setup.start(EXIT_ON_TERM="0")
    try:
        lines = setup.wait_for(lambda ls: any(l[0] == "start" for l in ls))
        start = next(l for l in lines if l[0] == "start")
        assert start[2] == first and start[3] == "None" and start[4] == "default"  # stale GOOGLE_API_KEY gone
        second = setup.publish()
        switched = time.monotonic()
        # keyward's own part is bounded: the old program is asked to stop within 2 s of the switch.
        # The new one's start is a fresh interpreter's, which a loaded machine may make slow.
        setup.wait_for(lambda ls: ["signal", "SIGTERM", start[1]] in ls, timeout=10)
        assert time.monotonic() - switched < 2.0
        lines = setup.wait_for(lambda ls: any(l[0] == "start" and l[2] == second for l in ls), timeout=15)
        assert lines.index(["signal", "SIGTERM", start[1]]) < next(
            i for i, l in enumerate(lines) if l[0] == "start" and l[2] == second)  # stopped first
        assert proc.poll() is None
    finally:
        _stop(proc, setup)


def test_exec_when_signalled_passes_signal_on_and_exits_with_child_status(setup):
    setup.publish()
    proc = setup.start(EXIT_ON_TERM="7")
    try:
        lines = setup.wait_for(lambda ls: any(l[0] == "start" for l in ls))
        pid = next(l for l in lines if l[0] == "start")[1]
        proc.send_signal(signal.SIGUSR1)
        setup.wait_for(lambda ls: ["signal", "SIGUSR1", pid] in ls)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 7
        assert ["signal", "SIGTERM", pid] in setup.lines()
    finally:
        _stop(proc, setup)


def test_exec_when_on_change_signal_sends_it_instead_of_restarting(setup):
    setup.publish()
    proc = setup.start("--on-change", "signal:HUP")
    try:
        lines = setup.wait_for(lambda ls: any(l[0] == "start" for l in ls))
        pid = next(l for l in lines if l[0] == "start")[1]
        setup.publish()
        lines = setup.wait_for(lambda ls: ["signal", "SIGHUP", pid] in ls)
        assert sum(1 for l in lines if l[0] == "start") == 1
    finally:
        _stop(proc, setup)


def test_exec_when_child_exits_passes_its_exit_code(setup):
    setup.publish()
    proc = setup.start(EXIT_NOW="3")
    assert proc.wait(10) == 3


def test_exec_when_command_missing_exits_127_and_names_it(setup):
    setup.publish()
    proc = subprocess.run([KEYWARD, "--config", str(setup.config), "exec", "--", "/nonexistent/prog"],
                          env=setup.env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 127 and "command not found: /nonexistent/prog" in proc.stderr


def test_exec_when_nothing_published_exits_1_without_running_it(setup):
    proc = subprocess.run([KEYWARD, "--config", str(setup.config), "exec", "--", sys.executable, "-c", "pass"],
                          env=setup.env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and "no key published" in proc.stderr


def test_exec_when_on_change_invalid_exits_2(setup):
    setup.publish()
    proc = subprocess.run([KEYWARD, "--config", str(setup.config), "exec", "--on-change", "signal:NOPE", "--",
                           "true"], env=setup.env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "signal" in proc.stderr


def test_exec_when_child_ignores_sigterm_on_restart_kills_it_after_stop_timeout(setup):
    setup.publish()
    proc = setup.start("--stop-timeout", "3s", EXIT_ON_TERM="ignore")
    try:
        lines = setup.wait_for(lambda ls: any(l[0] == "start" for l in ls))
        old_pid = next(l for l in lines if l[0] == "start")[1]
        second = setup.publish()
        lines = setup.wait_for(lambda ls: any(l[0] == "start" and l[2] == second for l in ls), timeout=10)
        assert ["signal", "SIGTERM", old_pid] in lines
        assert proc.poll() is None
    finally:
        _stop(proc, setup)


def test_exec_when_keyward_is_killed_the_program_is_told_to_stop(setup):
    """SIGKILL gives keyward no chance to pass anything on: the kernel's parent-death signal does."""
    setup.publish()
    proc = setup.start(EXIT_ON_TERM="0")
    try:
        lines = setup.wait_for(lambda ls: any(l[0] == "start" for l in ls))
        pid = int(next(l for l in lines if l[0] == "start")[1])
        proc.kill()
        proc.wait()
        setup.wait_for(lambda ls: ["signal", "SIGTERM", str(pid)] in ls)
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not alive(pid), "the program outlived keyward exec"
    finally:
        _stop(proc, setup)



class _Terminal:
    """An interactive bash on a pseudo-terminal of its own, driven as a user types at it."""

    def __init__(self, env: dict[str, str]):
        import fcntl
        import termios
        import threading

        self.master, slave = os.openpty()

        def controlling_terminal():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(["bash", "--norc", "--noprofile", "-i"], stdin=slave, stdout=slave,
                                     stderr=slave, env={**env, "PS1": "PROMPT> ", "TERM": "dumb"},
                                     preexec_fn=controlling_terminal)
        os.close(slave)
        self.output = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait_for(self, text: str, timeout: float = 15.0, after: int = 0) -> int:
        """Wait until `text` shows after position `after`; return where it ends."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            at = self.output.find(text.encode(), after)
            if at >= 0:
                return at + len(text)
            time.sleep(0.02)
        raise AssertionError(f"{text!r} not shown within {timeout}s; the terminal shows "
                             f"{self.output[-1500:].decode(errors='replace')!r}")

    def foreground_group(self) -> int:
        return os.tcgetpgrp(self.master)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def test_exec_at_a_terminal_ctrl_z_stops_the_job_and_fg_resumes_it(setup):
    """Job control as at any shell: Ctrl-Z gives the prompt back with the job stopped, `fg` resumes
    the program with the terminal, Ctrl-C then ends it and keyward with it."""
    setup.publish()
    term = _Terminal(setup.env)
    try:
        at = term.wait_for("PROMPT> ")
        term.type(f"{KEYWARD} --config {setup.config} exec -- {sys.executable} {setup.child} {setup.out}\n")
        lines = setup.wait_for(lambda ls: any(l[0] == "start" for l in ls))
        child = int(next(l for l in lines if l[0] == "start")[1])
        _wait_until(lambda: term.foreground_group() == child)  # the program holds the terminal
        term.type("\x1a")  # Ctrl-Z
        at = term.wait_for("Stopped", after=at)
        at = term.wait_for("PROMPT> ", after=at)  # the shell has the terminal back
        _wait_for_state(child, ("T",))
        keyward = next(pid for pid in _children_of(term.proc.pid))
        _wait_for_state(keyward, ("T",))
        term.type("fg\n")
        _wait_for_state(child, ("S", "R"))
        _wait_for_state(keyward, ("S", "R"))
        _wait_until(lambda: term.foreground_group() == child)  # and the terminal with it
        term.type("\x03")  # Ctrl-C reaches the program, which ends, and keyward with it
        term.wait_for("PROMPT> ", after=at)
        _wait_until(lambda: not alive(child) and not alive(keyward))
    finally:
        term.close()
        for line in setup.lines():
            if line[:1] == ["start"] and alive(int(line[1])):
                os.kill(int(line[1]), signal.SIGKILL)


def _wait_for_state(pid: int, states: tuple[str, ...]) -> None:
    _wait_until(lambda: state(pid) in states)


def _wait_until(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _children_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(p) for p in fh.read().split()]
