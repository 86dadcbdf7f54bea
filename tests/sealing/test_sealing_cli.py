"""The command line and the daemon with sealed key strings: init, encrypt, rekey, refusals, status."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from keyward.cli.app import cli
from keyward.master_key import parse_keys
from support.fakes import fake_auth_key


@pytest.fixture
def run(config_path, emu):
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(cli, ["--config", str(config_path), *args], input=input, catch_exceptions=False)

    return invoke


def test_master_key_init_says_where_it_went_without_printing_the_key(run, config_path):
    result = run("db", "master-key", "init")
    assert result.exit_code == 0, result.output
    path = config_path.parent / "master.key"
    (key,) = parse_keys(path.read_text(), str(path))
    assert f"created master key {key.id} in {path}" in result.output
    assert path.read_text().splitlines()[1] not in result.output
    assert (path.stat().st_mode & 0o777) == 0o600
    again = run("db", "master-key", "init")
    assert again.exit_code == 2 and "--add" in again.output


def test_status_when_no_master_key_warns_that_key_strings_are_plain(run):
    assert run("key", "add", "--project", "gamma-proj", input=fake_auth_key() + "\n").exit_code == 0
    status = json.loads(run("status", "--json").output)
    assert status["secrets"] == {"sealed": 0, "plain": 1, "master_keys": {}}
    (warning,) = [w for w in status["warnings"] if w["code"] == "secrets_plain"]
    assert "1 key string(s) are stored in plain text" in warning["message"]
    assert "keyward db master-key init" in warning["message"]


def test_encrypt_then_rekey_from_the_command_line_moves_every_secret(run, config_path):
    secret = fake_auth_key()
    run("key", "add", "--project", "gamma-proj", input=secret + "\n")
    assert run("db", "master-key", "init").exit_code == 0
    encrypted = run("db", "encrypt")
    assert encrypted.exit_code == 0 and "(1 from plain text)" in encrypted.output
    status = json.loads(run("status", "--json").output)
    assert status["secrets"]["plain"] == 0 and not [w for w in status["warnings"] if w["code"] == "secrets_plain"]

    added = run("db", "master-key", "init", "--add")
    assert added.exit_code == 0 and "kept" in added.output
    path = config_path.parent / "master.key"
    new, old = parse_keys(path.read_text(), str(path))
    rekeyed = run("db", "rekey")
    assert rekeyed.exit_code == 0, rekeyed.output
    assert f"with master key {new.id} (1 from master key {old.id})" in rekeyed.output
    assert f"no secret is sealed with master key {old.id} any more" in rekeyed.output
    assert "still not sealed" not in rekeyed.output
    assert f"key strings: 1 sealed with master key {new.id}" in run("db", "status").output
    shown = run("db", "master-key", "show")
    assert f"master key {new.id}: seals new secrets; 1 secret(s)" in shown.output
    for result in (encrypted, added, rekeyed, shown):
        assert secret not in result.output


def test_cli_when_master_key_missing_exits_1_for_secrets_but_status_answers(run, config_path):
    run("db", "master-key", "init")
    run("key", "add", "--project", "gamma-proj", input=fake_auth_key() + "\n")
    (config_path.parent / "master.key").unlink()

    refused = run("key", "add", "--project", "alpha-proj", input=fake_auth_key() + "\n")
    assert refused.exit_code == 1
    assert "no master key was found" in refused.output and str(config_path.parent / "master.key") in refused.output
    assert run("db", "rekey").exit_code == 1
    status = run("status", "--json")
    assert status.exit_code == 0 and json.loads(status.output)["secrets"]["sealed"] == 1
    assert run("key", "list").exit_code == 0


def test_daemon_when_master_key_missing_refuses_to_start_naming_where_it_looked(run, config_path, kw_env, emu):
    run("db", "master-key", "init")
    run("key", "add", "--project", "gamma-proj", input=fake_auth_key() + "\n")
    os.rename(config_path.parent / "master.key", config_path.parent / "elsewhere.key")
    env = {**os.environ, **kw_env, "KEYWARD_GOOGLE_EMULATOR_HOST": emu.address}
    env.pop("CREDENTIALS_DIRECTORY", None)
    done = subprocess.run([sys.executable, "-m", "keyward", "--config", str(config_path), "run", "--once"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1
    assert "sealed with master key" in done.stderr and "no master key was found" in done.stderr
    for place in ("$CREDENTIALS_DIRECTORY not set", "OS keyring keyward/master-key",
                  str(config_path.parent / "master.key")):
        assert place in done.stderr

    run("db", "master-key", "init")  # a fresh key where the right one was: the wrong key
    wrong = subprocess.run([sys.executable, "-m", "keyward", "--config", str(config_path), "run", "--once"],
                           capture_output=True, text=True, env=env, timeout=60)
    assert wrong.returncode == 1 and "not among the master keys found" in wrong.stderr
    (config_path.parent / "master.key").unlink()

    os.rename(config_path.parent / "elsewhere.key", config_path.parent / "master.key")
    creds = config_path.parent / "creds"
    creds.mkdir()
    os.rename(config_path.parent / "master.key", creds / "keyward-master")
    ok = subprocess.run([sys.executable, "-m", "keyward", "--config", str(config_path), "run", "--once"],
                        capture_output=True, text=True, env={**env, "CREDENTIALS_DIRECTORY": str(creds)},
                        timeout=60)
    assert ok.returncode == 0, ok.stderr


def test_rekey_when_a_sealed_value_was_tampered_exits_1_naming_the_key_and_rewrites_nothing(run, config_path):
    from sqlalchemy import create_engine, text

    run("db", "master-key", "init")
    run("key", "add", "--project", "gamma-proj", input=fake_auth_key() + "\n")
    database = config_path.parent / "state" / "keyward.db"
    engine = create_engine(f"sqlite:///{database}")
    with engine.begin() as conn:
        key_id, value = conn.execute(text("SELECT key_id, secret FROM keys")).one()
        head, body = value.rsplit(":", 1)
        data = bytearray(base64.b64decode(body))
        data[20] ^= 0x10  # one bit of the ciphertext
        tampered = f"{head}:{base64.b64encode(bytes(data)).decode()}"
        conn.execute(text("UPDATE keys SET secret = :v"), {"v": tampered})
    run("db", "master-key", "init", "--add")
    result = run("db", "rekey")
    assert result.exit_code == 1
    assert f"the sealed secret of key {key_id} failed authentication" in result.output
    with engine.connect() as conn:
        assert conn.execute(text("SELECT secret FROM keys")).scalar() == tampered
    engine.dispose()


def test_rekey_with_new_key_creates_it_beside_the_old_and_moves_every_secret(run, config_path):
    run("db", "master-key", "init")
    run("key", "add", "--project", "gamma-proj", input=fake_auth_key() + "\n")
    result = run("db", "rekey", "--new-key")
    assert result.exit_code == 0, result.output
    path = config_path.parent / "master.key"
    new, old = parse_keys(path.read_text(), str(path))
    assert f"created master key {new.id} in {path}" in result.output
    assert f"(1 from master key {old.id})" in result.output


def test_rekey_with_new_key_when_key_is_a_systemd_credential_explains_the_steps(run, config_path, monkeypatch):
    from keyward.master_key import format_keys
    from keyward.sealing import MasterKey

    creds = config_path.parent / "creds"
    creds.mkdir()
    (creds / "keyward-master").write_text(format_keys([MasterKey.generate("x")]))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    result = run("db", "rekey", "--new-key")
    assert result.exit_code == 2
    assert "keyward cannot write" in result.output and "restart the service" in result.output
