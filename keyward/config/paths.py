"""Where keyward looks for its configuration file and keeps its state and runtime files.

Every function takes an optional `env` mapping (default `os.environ`) so callers and tests can
ask "where would keyward look under this environment" without touching the process environment.
Empty environment variables count as unset, as the XDG base-directory spec says.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from keyward.errors import ConfigError

SYSTEM_CONFIG = Path("/etc/keyward/keyward.toml")
SYSTEM_STATE_DIR = Path("/var/lib/keyward")
SYSTEM_RUNTIME_DIR = Path("/run/keyward")


def _get(env: Mapping[str, str] | None, name: str) -> str | None:
    value = (os.environ if env is None else env).get(name, "")
    return value or None


def _home(env: Mapping[str, str] | None) -> Path:
    home = _get(env, "HOME")
    return Path(home) if home else Path.home()


def _is_root() -> bool:
    return os.geteuid() == 0


def user_config_path(env: Mapping[str, str] | None = None) -> Path:
    """Return `$XDG_CONFIG_HOME/keyward/keyward.toml` (`~/.config/...` when XDG_CONFIG_HOME is unset)."""
    base = _get(env, "XDG_CONFIG_HOME")
    return (Path(base) if base else _home(env) / ".config") / "keyward" / "keyward.toml"


def config_search_path(explicit: str | None = None, env: Mapping[str, str] | None = None) -> list[Path]:
    """Return the candidate configuration files in the order `find_config_path` tries them."""
    candidates = []
    if explicit:
        candidates.append(Path(explicit).expanduser())
    elif _get(env, "KEYWARD_CONFIG"):
        candidates.append(Path(_get(env, "KEYWARD_CONFIG")).expanduser())
    return candidates + [user_config_path(env), SYSTEM_CONFIG]


def find_config_path(explicit: str | None = None, *, env: Mapping[str, str] | None = None) -> Path | None:
    """Return the configuration file keyward should read, or None to run on built-in defaults.

    Order: `explicit` (the --config option), else $KEYWARD_CONFIG, else the user's config file,
    else /etc/keyward/keyward.toml; the first that exists wins. A file named by --config or
    $KEYWARD_CONFIG must exist: raise ConfigError naming it rather than silently falling back.
    """
    named = explicit or _get(env, "KEYWARD_CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            origin = "--config" if explicit else "KEYWARD_CONFIG"
            what = "is not a file" if path.exists() else "does not exist"
            raise ConfigError(f"{path}: configuration file named by {origin} {what}")
        return path
    for path in (user_config_path(env), SYSTEM_CONFIG):
        if path.is_file():
            return path
    return None


def is_system_config(path: Path | None) -> bool:
    """Whether `path` is the system service's configuration file.

    Its defaults are the system service's directories whoever reads it, so a program in group
    keyward running `keyward current` finds /run/keyward/<pool>.key rather than looking in its own
    runtime directory.
    """
    return path is not None and Path(path) == SYSTEM_CONFIG


def default_state_dir(env: Mapping[str, str] | None = None, *, system: bool = False) -> Path:
    """Return where keyward keeps its database and lock when the configuration does not say.

    $KEYWARD_STATE_DIR, else /var/lib/keyward for root, else $XDG_STATE_HOME/keyward
    (~/.local/state/keyward).
    """
    if _get(env, "KEYWARD_STATE_DIR"):
        return Path(_get(env, "KEYWARD_STATE_DIR")).expanduser()
    if _is_root() or system:
        return SYSTEM_STATE_DIR
    base = _get(env, "XDG_STATE_HOME")
    return (Path(base) if base else _home(env) / ".local" / "state") / "keyward"


def default_runtime_dir(env: Mapping[str, str] | None = None, *, state_dir: Path | None = None,
                        system: bool = False) -> Path:
    """Return where keyward puts sockets and published key files when the configuration does not say.

    $KEYWARD_RUNTIME_DIR, else $RUNTIME_DIRECTORY (set by systemd's RuntimeDirectory=; the first
    entry if several), else /run/keyward for root, else $XDG_RUNTIME_DIR/keyward, else
    `state_dir`/run (state_dir defaults to `default_state_dir(env)`).
    """
    if _get(env, "KEYWARD_RUNTIME_DIR"):
        return Path(_get(env, "KEYWARD_RUNTIME_DIR")).expanduser()
    if _get(env, "RUNTIME_DIRECTORY"):
        return Path(_get(env, "RUNTIME_DIRECTORY").split(":")[0])
    if _is_root() or system:
        return SYSTEM_RUNTIME_DIR
    if _get(env, "XDG_RUNTIME_DIR"):
        return Path(_get(env, "XDG_RUNTIME_DIR")) / "keyward"
    return (state_dir or default_state_dir(env)) / "run"


def credentials_directory_file(name: str, env: Mapping[str, str] | None = None) -> Path | None:
    """Return $CREDENTIALS_DIRECTORY/`name` when systemd passed that credential, else None."""
    base = _get(env, "CREDENTIALS_DIRECTORY")
    if base and (Path(base) / name).is_file():
        return Path(base) / name
    return None
