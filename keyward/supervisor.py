"""Run a program with the pool's key in its environment and follow the key when it changes.

This is `keyward exec` (like envconsul or `aws-vault exec`): keyward stays the parent, so it needs
no privilege over the program beyond reading the key. When the published key changes it restarts
the program (SIGTERM, then SIGKILL after `stop_timeout`), sends it a signal, or does nothing.
Signals keyward receives are passed on to the program, and keyward exits with the program's exit
status (128 + N when a signal N ended it), so a service manager sees the program as if it ran alone.

The child runs in its own process group (handed the terminal when keyward has it), so a Ctrl-C
at a terminal reaches it once, through keyward, and a restart can end whatever it started. Having
handed it the terminal, keyward also does the shell's part of job control for it: when Ctrl-Z
stops the program, keyward takes the terminal back and stops itself, so the shell sees the job
stopped; `fg` continues both and hands the terminal to the program again (as sudo does).
On Linux the kernel sends the program SIGTERM if keyward dies, even by SIGKILL or the OOM killer
(PR_SET_PDEATHSIG): a program whose key nobody follows any more should not run on unwatched.
One loop waits on a self-pipe (signal.set_wakeup_fd) with a short timeout: signals and the child's
exit wake it at once, and each turn checks the published key with a stat.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from keyward.errors import KeywardError, UsageError
from keyward.published import ENV_NAMES

log = logging.getLogger(__name__)

FORWARDED = tuple(getattr(signal, name) for name in (
    "SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGCONT"))
POLL = 0.25  # seconds between checks of the published key


@dataclass(frozen=True)
class OnChange:
    """What to do when the key changes: "restart", "signal" (with `signum`) or "none"."""

    action: str
    signum: int | None = None


def parse_on_change(text: str) -> OnChange:
    """Parse `restart`, `none` or `signal:NAME` (NAME like HUP, SIGHUP or USR1); raise UsageError."""
    if text in ("restart", "none"):
        return OnChange(text)
    if text.startswith("signal:"):
        name = text.split(":", 1)[1].upper()
        name = name if name.startswith("SIG") else "SIG" + name
        signum = getattr(signal, name, None)
        if isinstance(signum, signal.Signals) and signum not in (signal.SIGKILL, signal.SIGSTOP):
            return OnChange("signal", int(signum))
        raise UsageError(f"--on-change: unknown or uncatchable signal {text.split(':', 1)[1]!r} "
                         "(e.g. signal:HUP, signal:USR1)")
    raise UsageError(f"--on-change must be restart, none or signal:NAME, not {text!r}")


def child_environment(base: Mapping[str, str], key: str, variables: Sequence[str], pool: str,
                      key_id: str | None) -> dict[str, str]:
    """The program's environment: `base`, the key under each of `variables`, and none of the other
    Gemini key names (a stale GOOGLE_API_KEY inherited from a shell would win over GEMINI_API_KEY
    in google-genai)."""
    env = {k: v for k, v in base.items() if k not in ENV_NAMES}
    env.update({name: key for name in variables})
    env["KEYWARD_POOL"] = pool
    if key_id:
        env["KEYWARD_KEY_ID"] = key_id
    else:
        env.pop("KEYWARD_KEY_ID", None)
    return env


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _terminate_with_parent():
    """A hook for the forked child, before it runs the program: ask the kernel for SIGTERM when this
    process (the thread that forked, which is keyward's only one) ends. None where there is no prctl.

    The signal is tied to the parent of the moment, so a child whose parent already died before the
    call (it was reparented) ends at once rather than wait for a signal that will never come; with
    `os._exit`, since a signal would run keyward's own handlers, inherited until the exec.
    """
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(128 + int(signal.SIGTERM))

    return hook


def exit_status(returncode: int) -> int:
    """A shell's view of a child's status: its exit code, or 128 + N when signal N ended it."""
    return 128 - returncode if returncode < 0 else returncode


@contextlib.contextmanager
def _wakeup_pipe(signals: Sequence[int]) -> Iterator[int]:
    """Route `signals` (and SIGCHLD) to a non-blocking pipe; yield its read end."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    previous = {}
    old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    try:
        for signum in (*signals, signal.SIGCHLD):
            previous[signum] = signal.signal(signum, lambda *_: None)
        yield r
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(old_fd)
        os.close(r)
        os.close(w)


class Supervisor:
    """One program run under a KeyWatch; `run()` returns the exit status keyward should exit with."""

    def __init__(self, argv: Sequence[str], watch, on_change: OnChange, variables: Sequence[str], *,
                 stop_timeout: float = 10.0, poll: float = POLL, base_env: Mapping[str, str] | None = None):
        if not argv:
            raise UsageError("no command given: keyward exec [OPTIONS] -- COMMAND [ARGS]...")
        self.argv = list(argv)
        self.watch = watch
        self.on_change = on_change
        self.variables = tuple(variables)
        self.stop_timeout = stop_timeout
        self.poll = poll
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.child: subprocess.Popen | None = None
        self.key: str | None = None
        self._tty: int | None = None

    # -- the child ---------------------------------------------------------------------------

    def _key_id(self) -> str | None:
        try:
            return self.watch.state().key_id
        except KeywardError:
            return None

    def _start(self) -> None:
        self.key = self.watch.key()
        env = child_environment(self.base_env, self.key, self.variables, self.watch.pool, self._key_id())
        try:
            self.child = subprocess.Popen(self.argv, env=env, process_group=0,
                                          preexec_fn=_terminate_with_parent())
        except FileNotFoundError:
            raise CommandFailed(f"command not found: {self.argv[0]}", 127) from None
        except PermissionError:
            raise CommandFailed(f"cannot run {self.argv[0]}: permission denied", 126) from None
        except OSError as exc:
            raise CommandFailed(f"cannot run {self.argv[0]}: {exc.strerror}", 126) from None
        self._give_terminal(self.child.pid)
        log.info("started %s (pid %d) with key %s", os.path.basename(self.argv[0]), self.child.pid,
                 self._key_id() or "?")

    def _give_terminal(self, pgid: int) -> None:
        """Make the child's group the terminal's foreground group when keyward's group holds it."""
        try:
            fd = 0
            if not os.isatty(fd):
                return
            if self._tty is None and os.tcgetpgrp(fd) != os.getpgrp():
                return
            old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
            try:
                os.tcsetpgrp(fd, pgid)
            finally:
                signal.signal(signal.SIGTTOU, old)
            self._tty = fd
        except OSError:
            pass

    def _take_terminal_back(self) -> None:
        if self._tty is None:
            return
        old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        try:
            os.tcsetpgrp(self._tty, os.getpgrp())
        except OSError:
            pass
        finally:
            signal.signal(signal.SIGTTOU, old)

    def _send(self, signum: int) -> None:
        if self.child is not None and self.child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child.pid, signum)

    def _stopped_from_terminal(self) -> bool:
        """Whether the child was just stopped by the terminal (Ctrl-Z, a background read or write).
        Only stops are asked for, so an exit is left for Popen to reap."""
        if self.child is None or self.child.returncode is not None:
            return False
        try:
            info = os.waitid(os.P_PID, self.child.pid, os.WSTOPPED | os.WNOHANG)
        except ChildProcessError:
            return False
        return (info is not None and info.si_code == os.CLD_STOPPED
                and info.si_status in (signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU))

    def _suspend(self) -> None:
        """The program stopped at the terminal: give the terminal back to keyward's group and stop
        keyward too, so the shell regains it. Once continued, hand the terminal on again if the
        shell made keyward the foreground job (`fg`; after `bg` it stays with the shell), and
        continue the program."""
        assert self.child is not None
        log.debug("the program was stopped at the terminal; stopping too")
        self._take_terminal_back()
        os.kill(os.getpid(), signal.SIGSTOP)  # returns once the shell continues us
        try:
            foreground = self._tty is not None and os.tcgetpgrp(self._tty) == os.getpgrp()
        except OSError:
            foreground = False
        if foreground:
            self._give_terminal(self.child.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.child.pid, signal.SIGCONT)

    def _kill_group(self) -> None:
        if self.child is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.child.pid, signal.SIGKILL)

    # -- the loop ----------------------------------------------------------------------------

    def _changed_key(self) -> str | None:
        """Return the new key if the published one differs from the child's; None otherwise."""
        try:
            key = self.watch.key()
        except KeywardError as exc:
            log.debug("published key not readable now (%s); the program keeps its key", exc)
            return None
        return key if key != self.key else None

    def run(self) -> int:
        """Run the program until it exits on its own (or after a signal keyward passed on)."""
        with _wakeup_pipe(FORWARDED) as wake:
            self._start()
            stopping = False  # a signal to end was passed on: never restart after it
            restart_deadline: float | None = None
            try:
                while True:
                    for signum in _drain(wake):
                        if signum == signal.SIGCHLD:
                            if self._tty is not None and self._stopped_from_terminal():
                                self._suspend()
                            continue
                        if signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
                            stopping = stopping or signum != signal.SIGHUP
                        self._send(signum)
                    assert self.child is not None
                    if self.child.poll() is not None:
                        if restart_deadline is not None and not stopping:
                            self._kill_group()  # leftovers of the old program must not hold its ports
                            restart_deadline = None
                            self._start()
                            continue
                        return exit_status(self.child.returncode)
                    if restart_deadline is not None:
                        if time.monotonic() >= restart_deadline:
                            log.warning("program did not stop within %gs after SIGTERM; killing it",
                                        self.stop_timeout)
                            self._kill_group()
                            restart_deadline = time.monotonic() + self.stop_timeout
                    elif not stopping:
                        new = self._changed_key()
                        if new is not None:
                            restart_deadline = self._key_changed(new)
                    _wait(wake, self.poll)
            finally:
                self._take_terminal_back()
                if self.child is not None and self.child.poll() is None:
                    self._send(signal.SIGTERM)
                    try:
                        self.child.wait(self.stop_timeout)
                    except subprocess.TimeoutExpired:
                        self._kill_group()
                        self.child.wait()

    def _key_changed(self, new: str) -> float | None:
        """Act on a new key; return the restart deadline when a restart began."""
        key_id = self._key_id() or "?"
        if self.on_change.action == "restart":
            log.info("the published key changed (now %s); restarting the program", key_id)
            self._send(signal.SIGTERM)
            return time.monotonic() + self.stop_timeout
        self.key = new
        if self.on_change.action == "signal" and self.on_change.signum is not None:
            log.info("the published key changed (now %s); sending %s", key_id,
                     signal.Signals(self.on_change.signum).name)
            self._send(self.on_change.signum)
        else:
            log.info("the published key changed (now %s); the program keeps its key", key_id)
        return None


class CommandFailed(KeywardError):
    """The program could not be started; `status` is the shell's code for why (126, 127)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.exit_code = status


def _drain(fd: int) -> list[int]:
    out: list[int] = []
    while True:
        try:
            data = os.read(fd, 512)
        except BlockingIOError:
            return out
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            return out
        if not data:
            return out
        out.extend(data)


def _wait(fd: int, timeout: float) -> None:
    with contextlib.suppress(InterruptedError):
        select.select([fd], [], [], timeout)
