from pathlib import Path

import pytest

from keyward.config import default_runtime_dir, default_state_dir, find_config_path
from keyward.config import paths
from keyward.errors import ConfigError


def test_find_config_path_when_explicit_exists_returns_it(tmp_path, env):
    explicit = tmp_path / "mine.toml"
    explicit.write_text("")
    env["KEYWARD_CONFIG"] = str(tmp_path / "ignored.toml")
    assert find_config_path(str(explicit), env=env) == explicit


def test_find_config_path_when_explicit_missing_raises_naming_it(tmp_path, env):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="nope.toml.*--config.*does not exist"):
        find_config_path(str(missing), env=env)


def test_find_config_path_when_env_names_missing_file_raises_naming_variable(tmp_path, env):
    env["KEYWARD_CONFIG"] = str(tmp_path / "gone.toml")
    with pytest.raises(ConfigError, match="gone.toml.*KEYWARD_CONFIG"):
        find_config_path(env=env)


def test_find_config_path_when_explicit_is_directory_raises(tmp_path, env):
    with pytest.raises(ConfigError, match="is not a file"):
        find_config_path(str(tmp_path), env=env)


def test_find_config_path_when_env_set_prefers_it_over_user_file(tmp_path, env):
    named = tmp_path / "env.toml"
    named.write_text("")
    user_file = tmp_path / "xdg" / "keyward" / "keyward.toml"
    user_file.parent.mkdir(parents=True)
    user_file.write_text("")
    env.update(KEYWARD_CONFIG=str(named), XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    assert find_config_path(env=env) == named


def test_find_config_path_when_only_user_file_exists_returns_it(tmp_path, env):
    user_file = Path(env["HOME"]) / ".config" / "keyward" / "keyward.toml"
    user_file.parent.mkdir(parents=True)
    user_file.write_text("")
    assert find_config_path(env=env) == user_file


def test_find_config_path_when_nothing_exists_returns_none_or_system_file(tmp_path, env, monkeypatch):
    monkeypatch.setattr(paths, "SYSTEM_CONFIG", tmp_path / "etc" / "keyward.toml")
    assert find_config_path(env=env) is None
    system = paths.SYSTEM_CONFIG
    system.parent.mkdir()
    system.write_text("")
    assert find_config_path(env=env) == system


def test_default_state_dir_when_env_set_wins_even_for_root(tmp_path, env, root):
    env["KEYWARD_STATE_DIR"] = str(tmp_path / "state")
    assert default_state_dir(env) == tmp_path / "state"


def test_default_state_dir_when_root_is_var_lib(env, root):
    assert default_state_dir(env) == Path("/var/lib/keyward")


def test_default_state_dir_when_user_follows_xdg(tmp_path, env, user):
    assert default_state_dir(env) == Path(env["HOME"]) / ".local" / "state" / "keyward"
    env["XDG_STATE_HOME"] = str(tmp_path / "xs")
    assert default_state_dir(env) == tmp_path / "xs" / "keyward"


def test_default_runtime_dir_order_env_then_systemd_then_root(tmp_path, env, root):
    assert default_runtime_dir(env) == Path("/run/keyward")
    env["RUNTIME_DIRECTORY"] = "/run/sysd:/run/other"
    assert default_runtime_dir(env) == Path("/run/sysd")
    env["KEYWARD_RUNTIME_DIR"] = str(tmp_path / "rt")
    assert default_runtime_dir(env) == tmp_path / "rt"


def test_default_runtime_dir_when_user_uses_xdg_runtime_dir_else_state(tmp_path, env, user):
    assert default_runtime_dir(env) == Path(env["HOME"]) / ".local" / "state" / "keyward" / "run"
    assert default_runtime_dir(env, state_dir=tmp_path / "s") == tmp_path / "s" / "run"
    env["XDG_RUNTIME_DIR"] = str(tmp_path / "xr")
    assert default_runtime_dir(env) == tmp_path / "xr" / "keyward"


def test_empty_environment_variables_count_as_unset(env, user):
    env.update(KEYWARD_STATE_DIR="", KEYWARD_RUNTIME_DIR="", XDG_RUNTIME_DIR="", KEYWARD_CONFIG="")
    assert default_state_dir(env) == Path(env["HOME"]) / ".local" / "state" / "keyward"
    assert default_runtime_dir(env).name == "run"


def test_system_config_when_read_by_a_user_uses_the_system_services_dirs(tmp_path, env, user, monkeypatch):
    from keyward.config import load_config
    from keyward.published import light_config

    system_file = tmp_path / "etc-keyward.toml"
    system_file.write_text("")
    monkeypatch.setattr(paths, "SYSTEM_CONFIG", system_file)
    env["XDG_RUNTIME_DIR"] = str(tmp_path / "user-run")
    config = load_config(system_file, env=env)
    assert config.state_dir == paths.SYSTEM_STATE_DIR and config.runtime_dir == paths.SYSTEM_RUNTIME_DIR
    assert light_config(str(system_file), env=env)[1] == str(paths.SYSTEM_RUNTIME_DIR)
    other = tmp_path / "mine.toml"
    other.write_text("")
    assert load_config(other, env=env).runtime_dir == tmp_path / "user-run" / "keyward"
