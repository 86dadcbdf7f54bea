"""Run an operator's command after a key was published (like certbot's deploy hook).

The command gets `KEYWARD_POOL` and `KEYWARD_KEY_ID` in its environment, never the key: it should
read the published file or keyring itself. It runs without a shell, with stdin closed, in its own
process group so a timeout kills everything it started. A failing hook is logged at warning with
its output (redacted, truncated), not raised: the key is already published and the next pass must
go on. To restart another service on a new key, the keyward-restart@.path unit needs no privilege;
`systemctl try-restart` from here fails under the shipped unit ("Access denied").
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
from collections.abc import Sequence

log = logging.getLogger(__name__)

OUTPUT_LOG_LIMIT = 2000


def _truncate(output: bytes) -> str:
    """The hook's output for a log line: redacted (it may print a key it read) and bounded."""
    from keyward.keystrings import redact

    text = redact(output.decode("utf-8", errors="replace").strip())
    if len(text) > OUTPUT_LOG_LIMIT:
        text = text[:OUTPUT_LOG_LIMIT] + f"… ({len(text) - OUTPUT_LOG_LIMIT} more characters)"
    return text


def _said(output: bytes) -> str:
    text = _truncate(output) if output else ""
    return f"; it said: {text}" if text else " (no output)"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def run_post_publish(argv: Sequence[str] | str, pool: str, key_id: str, timeout: float) -> bool:
    """Run `argv` for a key just published to `pool`; return True if it exited 0 within `timeout`.

    A string is split like a shell would (shlex) but never run through one. Failures to start,
    non-zero exits and timeouts are logged at warning and give False; this never raises for them.
    """
    name = os.path.basename(argv.split()[0]) if isinstance(argv, str) and argv.split() else (
        os.path.basename(argv[0]) if not isinstance(argv, str) and argv else "")
    return run_command(argv, {"KEYWARD_POOL": pool, "KEYWARD_KEY_ID": key_id}, timeout,
                       f"post-publish hook {name} for pool {pool}")


def run_command(argv: Sequence[str] | str, extra_env: dict[str, str], timeout: float, label: str) -> bool:
    """Run an operator's command with `extra_env` added; return True if it exited 0 within `timeout`.

    `label` names it in log lines ("post-publish hook notify for pool main"). Never raises for a
    command that cannot start, fails or hangs: each is one warning with its (redacted) output.
    """
    try:
        args = shlex.split(argv) if isinstance(argv, str) else list(argv)
    except ValueError as exc:
        log.warning("%s cannot be split into arguments: %s", label, exc)
        return False
    if not args:
        log.warning("%s is empty; nothing run", label)
        return False
    env = {**os.environ, **extra_env}
    try:
        proc = subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        log.warning("%s could not start: %s", label, exc.strerror or exc)
        return False
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        try:
            output, _ = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # a grandchild escaped the group and holds the pipe
            proc.kill()
            proc.wait()
            output = b""
        log.warning("%s timed out after %gs and was killed%s", label, timeout, _said(output))
        return False
    if proc.returncode != 0:
        log.warning("%s failed with exit status %s%s", label, proc.returncode, _said(output))
        return False
    if output:
        log.debug("%s output: %s", label, _truncate(output))
    log.debug("%s succeeded", label)
    return True
