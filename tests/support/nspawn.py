"""A real systemd for tests: a minimal Debian booted in systemd-nspawn.

The root file system is built once with debootstrap from the Debian mirror this machine's apt
sources name, and cached (default /var/cache/keyward-test, or $KEYWARD_TEST_CACHE): later runs
boot it in a second or two. Every boot uses `--volatile=overlay`, so whatever a test writes lands
in a tmpfs and the cached tree is never changed; two test runs can share it.

The host needs no systemd of its own: the container is started with `--register=no --keep-unit`
(nothing is asked of a host machined or D-Bus) and commands run inside it through nsenter on the
container's PID 1, as root or, through runuser, as any user.

`unavailable()` returns why nspawn cannot run here (not root, a missing tool, no mirror), so a
test can say so; the caller decides whether that is a skip (a developer's machine) or a failure
(CI).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

SUITE = "bookworm"
PACKAGES = ("systemd", "systemd-sysv", "dbus", "dbus-user-session", "libpam-systemd", "python3",
            "python3-venv", "gnome-keyring")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
CACHE = Path(os.environ.get("KEYWARD_TEST_CACHE", "/var/cache/keyward-test"))
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class NspawnUnavailable(Exception):
    """systemd-nspawn cannot boot a container here; the message says why."""


def unavailable() -> str | None:
    """Why a container cannot be booted on this host, or None when it can be tried."""
    if os.geteuid() != 0:
        return "systemd-nspawn and debootstrap need root"
    missing = [tool for tool in ("systemd-nspawn", "debootstrap", "nsenter") if shutil.which(tool) is None]
    if missing:
        return (f"{', '.join(missing)} not installed (apt-get install systemd-container debootstrap; "
                "`./dev test` does this as root)")
    return None


def debian_mirror(apt: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt on this machine uses for the base suite, else deb.debian.org.

    $KEYWARD_TEST_DEBIAN_MIRROR wins. Both the one-line (sources.list) and the deb822 (.sources)
    formats are read; the security and updates suites are skipped, they hold no base system.
    """
    if os.environ.get("KEYWARD_TEST_DEBIAN_MIRROR"):
        return os.environ["KEYWARD_TEST_DEBIAN_MIRROR"]
    files = [apt / "sources.list"] + sorted((apt / "sources.list.d").glob("*"))
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
                if "deb" in fields.get("Types", "").split() and SUITE in fields.get("Suites", "").split():
                    return fields.get("URIs", "").split()[0]
        elif path.name == "sources.list" or path.suffix == ".list":
            for line in text.splitlines():
                words = line.split("#", 1)[0].split()
                words = [w for w in words if not w.startswith("[")]
                if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                    return words[1]
    return DEFAULT_MIRROR


def rootfs(log: Path) -> Path:
    """Return the cached root file system, building it with debootstrap first if needed.

    A lock keeps two test runs from building at once; the tree is built beside its final name and
    renamed into place only when debootstrap succeeded, so a half-built tree is never used.
    Raise NspawnUnavailable with debootstrap's last lines when the build fails.
    """
    tag = hashlib.sha256(f"{SUITE} minbase {' '.join(sorted(PACKAGES))}".encode()).hexdigest()[:10]
    target = CACHE / f"{SUITE}-{tag}"
    if (target / "usr/lib/systemd/systemd").exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "usr/lib/systemd/systemd").exists():
            return target
        building = CACHE / f".{target.name}.building"
        shutil.rmtree(building, ignore_errors=True)
        mirror = debian_mirror()
        with open(log, "w") as out:
            result = subprocess.run(
                ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
                 str(building), mirror], stdout=out, stderr=subprocess.STDOUT, timeout=1800)
        if result.returncode != 0:
            tail = log.read_text(errors="replace").splitlines()[-8:]
            raise NspawnUnavailable(f"debootstrap {SUITE} from {mirror} failed ({result.returncode}):\n"
                                    + "\n".join(tail))
        os.rename(building, target)
    return target


class Machine:
    """A booted container; `run` executes a shell script inside it."""

    def __init__(self, root: Path, name: str, log: Path, binds: dict[str, str]):
        self.root, self.name, self.log = root, name, log
        args = ["systemd-nspawn", "--quiet", "--directory", str(root), "--machine", name, "--boot",
                "--volatile=overlay", "--register=no", "--keep-unit", "--console=read-only"]
        args += [f"--bind-ro={host}:{inside}" for host, inside in binds.items()]
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.leader: int | None = None

    def wait_booted(self, timeout: float = 90.0) -> None:
        """Wait until the container's systemd reports the boot finished; raise NspawnUnavailable."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NspawnUnavailable(f"systemd-nspawn exited with {self.proc.returncode}:\n{self.log_tail()}")
            self.leader = self.leader or self._find_leader()
            if self.leader is not None:
                state = self.run("systemctl is-system-running --wait", timeout=max(1.0, deadline - time.monotonic()),
                                 check=False).stdout.strip()
                if state in ("running", "degraded"):
                    return
            time.sleep(0.2)
        raise NspawnUnavailable(f"the container did not finish booting within {timeout:.0f} s:\n{self.log_tail()}")

    def _find_leader(self) -> int | None:
        """The container's PID 1, as seen from the host: the nspawn child that runs systemd."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            pids = children.read_text().split()
        except OSError:
            return None
        for pid in pids:
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    return int(pid)
            except OSError:
                continue
        return None

    def run(self, script: str, *, user: str | None = None, timeout: float = 120.0, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `script` with bash inside the container (as root, or as `user` with a login-like
        environment including its user manager's bus); raise AssertionError if it fails and `check`."""
        assert self.leader is not None, "the container is not booted"
        env = ["env", "-i", f"PATH={PATH}", "LANG=C.UTF-8", "HOME=/root"]
        command = ["bash", "-euo", "pipefail", "-c", script]
        if user is not None:
            prefix = ("cd ~ && export HOME=~ XDG_RUNTIME_DIR=/run/user/$(id -u) "
                      "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/$(id -u)/bus && ")
            command = ["runuser", "-u", user, "--", "bash", "-euo", "pipefail", "-c", prefix + script]
        result = subprocess.run(["nsenter", "--target", str(self.leader), "--all", "--", *env, *command],
                                capture_output=True, text=True, timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"in the container{f' as {user}' if user else ''}, exit {result.returncode}:\n"
                                 f"$ {script}\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        return result

    def show(self, unit: str, *props: str, user: str | None = None) -> dict[str, str]:
        """`systemctl show` properties of `unit` as a dict."""
        flag = "--user " if user else ""
        out = self.run(f"systemctl {flag}show {unit} " + " ".join(f"-p {p}" for p in props), user=user).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Power the container off (SIGTERM makes nspawn ask its systemd to), killing it if slow."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
