"""Where master keys come from: systemd credential, OS keyring, the 0600 file; creating one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from keyward import master_key as mk
from keyward.config import load_config
from keyward.errors import MasterKeyError, UsageError
from keyward.sealing import MasterKey

NO_BUS: dict[str, str] = {}


def _config(tmp_path: Path, extra: str = ""):
    path = tmp_path / "conf" / "keyward.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n{extra}')
    return load_config(path, env={})


def test_find_when_nothing_anywhere_returns_no_key_and_every_place_looked(tmp_path):
    found = mk.find(_config(tmp_path), NO_BUS)
    assert found.keys == []
    where = found.where()
    assert "$CREDENTIALS_DIRECTORY not set" in where and "OS keyring keyward/master-key" in where
    assert str(tmp_path / "conf" / "master.key") + " (no such file)" in where


def test_find_when_credential_and_file_both_hold_keys_seals_with_the_credential(tmp_path):
    config = _config(tmp_path)
    from_file, _ = mk.init_file(tmp_path / "conf" / "master.key", add=False)
    creds = tmp_path / "creds"
    creds.mkdir()
    credential = MasterKey.generate("credential")
    (creds / "keyward-master").write_text(mk.format_keys([credential]))
    found = mk.find(config, {"CREDENTIALS_DIRECTORY": str(creds)})
    assert [k.id for k in found.keys] == [credential.id, from_file.id]
    assert found.keys[0].source == str(creds / "keyward-master")


def test_find_when_file_readable_by_others_refuses_naming_the_mode(tmp_path):
    config = _config(tmp_path)
    path = tmp_path / "conf" / "master.key"
    mk.init_file(path, add=False)
    os.chmod(path, 0o644)
    if os.geteuid() == 0 and not (path.stat().st_mode & 0o044):  # pragma: no cover
        pytest.skip("chmod had no effect")
    with pytest.raises(MasterKeyError, match=r"readable by others \(mode 0644\).*chmod 600"):
        mk.find(config, NO_BUS)


def test_find_when_config_names_a_missing_file_refuses_instead_of_storing_plain_text(tmp_path):
    missing = tmp_path / "secret" / "master.key"
    config = _config(tmp_path, f'master_key_file = "{missing}"\n')
    with pytest.raises(MasterKeyError, match=f"master_key_file {missing} .* does not exist.*master-key init"):
        mk.find(config, NO_BUS)


def test_find_when_a_line_is_not_a_key_names_the_file_and_line(tmp_path):
    config = _config(tmp_path)
    path = tmp_path / "conf" / "master.key"
    path.write_text("# comment\n" + mk.format_keys([MasterKey.generate("x")]).splitlines()[1] + "\nnot-a-key\n")
    os.chmod(path, 0o600)
    with pytest.raises(MasterKeyError, match=f"{path}, line 3: not a master key"):
        mk.find(config, NO_BUS)


def test_init_file_when_creating_writes_0600_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "new-dir" / "master.key"
    key, kept = mk.init_file(path, add=False)
    assert kept == [] and (path.stat().st_mode & 0o777) == 0o600
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    assert [k.id for k in mk.parse_keys(path.read_text(), str(path))] == [key.id]
    with pytest.raises(UsageError, match="already holds a master key; pass --add"):
        mk.init_file(path, add=False)
    assert [k.id for k in mk.parse_keys(path.read_text(), str(path))] == [key.id]


def test_init_file_when_adding_puts_the_new_key_first_and_keeps_the_old(tmp_path):
    path = tmp_path / "master.key"
    first, _ = mk.init_file(path, add=False)
    second, kept = mk.init_file(path, add=True)
    assert [k.id for k in kept] == [first.id]
    assert [k.id for k in mk.parse_keys(path.read_text(), str(path))] == [second.id, first.id]


@pytest.mark.keyring_service
@pytest.mark.skipif(not (shutil.which("dbus-daemon") and shutil.which("gnome-keyring-daemon")),
                    reason="needs dbus-daemon and gnome-keyring-daemon")
def test_find_when_master_key_in_os_keyring_uses_it_before_the_file(tmp_path):
    from support.secret_service import secret_service_session

    config = _config(tmp_path)
    from_file, _ = mk.init_file(tmp_path / "conf" / "master.key", add=False)
    with secret_service_session(apply_env=True) as env:
        in_keyring, _ = mk.init_keyring(env, add=False)
        found = mk.find(config, env)
    assert [k.id for k in found.keys] == [in_keyring.id, from_file.id]
    assert found.keys[0].source == "OS keyring keyward/master-key"
