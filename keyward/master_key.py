"""Where the master key that seals key strings at rest comes from, and how a new one is created.

Sources, in order (every key found is usable to open; the first one found seals):
1. the systemd credential `$CREDENTIALS_DIRECTORY/keyward-master` (`LoadCredentialEncrypted=`);
2. the OS keyring, service `keyward`, username `master-key`, when a keyring can exist here (a session
   bus, or PYTHON_KEYRING_BACKEND naming a backend): a headless server has none, and probing for
   one would cost every command a tenth of a second;
3. the file `master_key_file` names in the config (default: `master.key` beside the config file),
   which must be 0600. A file the config names explicitly must exist.

A source holds one key per line (base64 of 32 bytes; `#` comments allowed). Several lines let an
old key stay readable while `keyward db rekey` moves every secret to the new, first one.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from keyward.errors import KeywardError, MasterKeyError, UsageError
from keyward.sealing import Found, MasterKey

if TYPE_CHECKING:
    from keyward.config import Config

log = logging.getLogger(__name__)

CREDENTIAL_NAME = "keyward-master"
KEYRING_SERVICE, KEYRING_USERNAME = "keyward", "master-key"
DEFAULT_FILE_NAME = "master.key"
MAX_SOURCE_BYTES = 64 * 1024
MAX_KEYS = 16


def default_file(config: "Config", env: Mapping[str, str] | None = None) -> Path:
    """Return the master key file: the config's `master_key_file`, else master.key beside the config."""
    if config.master_key_file is not None:
        return config.master_key_file
    if config.source is not None:
        return config.source.parent / DEFAULT_FILE_NAME
    from keyward.config.paths import SYSTEM_CONFIG, user_config_path

    base = SYSTEM_CONFIG if os.geteuid() == 0 else user_config_path(env)
    return base.parent / DEFAULT_FILE_NAME


def parse_keys(text: str, source: str) -> list[MasterKey]:
    """Return the keys in `text` (one base64 key per line). Raise MasterKeyError naming the line."""
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            material = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            material = b""
        if len(material) != 32:
            raise MasterKeyError(f"{source}, line {number}: not a master key (expected base64 of 32 bytes; "
                                 "create one with `keyward db master-key init`)")
        keys.append(MasterKey(material, source))
    if len(keys) > MAX_KEYS:
        raise MasterKeyError(f"{source}: {len(keys)} master keys; at most {MAX_KEYS} are read")
    return keys


def format_keys(keys: list[MasterKey]) -> str:
    lines = ["# keyward master keys, newest first: the first seals, every one opens. Keep this file 0600."]
    lines += [base64.b64encode(k.material).decode("ascii") for k in keys]
    return "\n".join(lines) + "\n"


def _read_limited(path: Path) -> str:
    with open(path, "rb") as handle:
        data = handle.read(MAX_SOURCE_BYTES + 1)
    if len(data) > MAX_SOURCE_BYTES:
        raise MasterKeyError(f"{path}: larger than {MAX_SOURCE_BYTES} bytes; not a master key file")
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise MasterKeyError(f"{path}: not a text file of base64 master keys") from None


def _from_credential(env: Mapping[str, str], found: Found) -> None:
    base = env.get("CREDENTIALS_DIRECTORY")
    where = f"systemd credential {CREDENTIAL_NAME}"
    if not base:
        found.looked.append(f"{where} ($CREDENTIALS_DIRECTORY not set)")
        return
    path = Path(base) / CREDENTIAL_NAME
    if not path.is_file():
        found.looked.append(f"{path} (not passed to this service)")
        return
    try:
        found.keys += parse_keys(_read_limited(path), str(path))
    except OSError as exc:
        raise MasterKeyError(f"{path}: cannot read the master key: {exc.strerror}") from None
    found.looked.append(str(path))


def _keyring_backend(env: Mapping[str, str]):
    import keyring
    import keyring.core

    named = env.get("PYTHON_KEYRING_BACKEND")
    return keyring.core.load_keyring(named) if named else keyring.get_keyring()


def _from_keyring(env: Mapping[str, str], found: Found) -> None:
    where = f"OS keyring {KEYRING_SERVICE}/{KEYRING_USERNAME}"
    if not (env.get("PYTHON_KEYRING_BACKEND") or env.get("DBUS_SESSION_BUS_ADDRESS")):
        found.looked.append(f"{where} (no session bus here)")
        return
    try:
        value = _keyring_backend(env).get_password(KEYRING_SERVICE, KEYRING_USERNAME)
    except Exception as exc:  # third-party boundary: any backend failure means "not found here"
        found.looked.append(f"{where} (unavailable: {type(exc).__name__})")
        return
    if not value:
        found.looked.append(f"{where} (no such entry)")
        return
    found.keys += parse_keys(value, where)
    found.looked.append(where)


def check_private(path: Path) -> None:
    """Raise MasterKeyError unless `path` is a regular file only its owner can read."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise MasterKeyError(f"{path}: not a regular file")
    if info.st_mode & 0o077:
        raise MasterKeyError(
            f"{path}: the master key file is readable by others (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"run `chmod 600 {path}`"
        )


def _from_file(config: "Config", env: Mapping[str, str], found: Found) -> None:
    path = default_file(config, env)
    explicit = config.master_key_file is not None
    if not path.exists():
        if explicit:
            raise MasterKeyError(
                f"master_key_file {path} (named in {config.source or 'the config'}) does not exist; "
                "create it with `keyward db master-key init`"
            )
        found.looked.append(f"{path} (no such file)")
        return
    try:
        check_private(path)
        found.keys += parse_keys(_read_limited(path), str(path))
    except OSError as exc:
        raise MasterKeyError(f"{path}: cannot read the master key: {exc.strerror}") from None
    found.looked.append(str(path))


def find(config: "Config", env: Mapping[str, str] | None = None) -> Found:
    """Search every source in order; return every key found and where we looked.

    Raise MasterKeyError for a source that exists but is unusable (bad mode, not a key): silently
    falling back to plain text there would store new secrets unsealed.
    """
    env = os.environ if env is None else env
    found = Found([], [])
    _from_credential(env, found)
    _from_keyring(env, found)
    _from_file(config, env, found)
    unique: dict[str, MasterKey] = {}
    for key in found.keys:
        unique.setdefault(key.id, key)
    found.keys = list(unique.values())
    return found


def sealer_for(config: "Config", env: Mapping[str, str] | None = None):
    """Return a Sealer that looks for master keys on first need, per this module's order."""
    from keyward.sealing import Sealer

    return Sealer(lambda: find(config, env))


# Creating a master key ------------------------------------------------------------------------------


def init_file(path: Path, *, add: bool) -> tuple[MasterKey, list[MasterKey]]:
    """Write a new master key first in `path` (0600; its directory 0700 when created).

    Return (the new key, the keys kept after it). Refuse an existing file unless `add`, which keeps
    its keys for opening until `keyward db rekey` has moved every secret to the new one.
    """
    from keyward.atomicfile import AtomicWriteError, replace_file

    kept: list[MasterKey] = []
    if path.exists():
        if not add:
            raise UsageError(f"{path} already holds a master key; pass --add to put a new one in front "
                             "of it (then run `keyward db rekey`)")
        check_private(path)
        kept = parse_keys(_read_limited(path), str(path))
    new = MasterKey.generate(str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        replace_file(path, format_keys([new, *kept]).encode(), mode=0o600, temp_prefix=f".{path.name}.")
    except AtomicWriteError as exc:
        raise KeywardError(f"{path}: cannot {exc.step}: {exc.strerror}") from None
    except OSError as exc:
        raise KeywardError(f"{path.parent}: cannot create the directory: {exc.strerror}") from None
    return new, kept


def init_keyring(env: Mapping[str, str] | None = None, *, add: bool) -> tuple[MasterKey, list[MasterKey]]:
    """Store a new master key first in the OS keyring entry; same rules as `init_file`."""
    env = os.environ if env is None else env
    where = f"OS keyring {KEYRING_SERVICE}/{KEYRING_USERNAME}"
    try:
        backend = _keyring_backend(env)
        current = backend.get_password(KEYRING_SERVICE, KEYRING_USERNAME)
    except Exception as exc:
        raise KeywardError(f"{where}: cannot use the keyring: {type(exc).__name__}") from None
    kept: list[MasterKey] = []
    if current:
        if not add:
            raise UsageError(f"{where} already holds a master key; pass --add to put a new one in front of it")
        kept = parse_keys(current, where)
    new = MasterKey.generate(where)
    try:
        backend.set_password(KEYRING_SERVICE, KEYRING_USERNAME, format_keys([new, *kept]))
    except Exception as exc:
        raise KeywardError(f"{where}: cannot store the master key: {type(exc).__name__}") from None
    return new, kept


def add_new(config: "Config", current: MasterKey | None,
            env: Mapping[str, str] | None = None) -> tuple[MasterKey, list[MasterKey]]:
    """Put a new master key in front of `current`, where `current` was found (the default file when
    there is none). A systemd credential cannot be written from here: raise UsageError saying how."""
    if current is None or current.source == str(default_file(config, env)):
        return init_file(default_file(config, env), add=True)
    if current.source.startswith("OS keyring"):
        return init_keyring(env, add=True)
    raise UsageError(
        f"the master key {current.id} comes from {current.source}, which keyward cannot write: create a new "
        "key with `keyward db master-key init --file F`, put it first in the credential with the old "
        "one after it, restart the service, then run `keyward db rekey`"
    )
