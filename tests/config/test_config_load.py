from datetime import timedelta
from pathlib import Path

import pytest

from keyward.config import (
    Config,
    LimitConfig,
    RotationConfig,
    SinkConfig,
    load_config,
)
from keyward.errors import ConfigError


def test_load_config_when_no_file_uses_defaults(env, user):
    config = load_config(None, env=env)
    state = Path(env["HOME"]) / ".local" / "state" / "keyward"
    assert config.source is None
    assert config.state_dir == state
    assert config.runtime_dir == state / "run"
    assert config.database_url == f"sqlite:///{state}/keyward.db"
    assert config.log_level == "info"
    assert config.rotation == RotationConfig()
    assert config.rotation.min_age == timedelta(days=7) and config.rotation.max_age == timedelta(days=15)
    assert config.selection.margin == 0.10
    assert config.daemon.ingest_socket == state / "run" / "ingest.sock"
    assert config.daemon.lock_file == state / "keyward.db.lock"  # beside the SQLite file
    assert config.daemon.ingest_tcp is None and config.daemon.metrics is None
    assert config.google.credentials is None
    assert config.projects == {}


def test_load_config_when_no_pools_declared_has_implicit_default_pool(env, root):
    config = load_config(None, env=env)
    pool = config.pools["default"]
    assert not pool.declared
    assert pool.model == "gemini-2.5-flash"
    assert pool.sinks == (
        SinkConfig("file", {"path": Path("/run/keyward/default.key"), "format": "raw", "mode": 0o600, "group": None}),
    )


def test_load_config_when_env_overrides_set_they_win_over_file(write, env, tmp_path):
    path = write(
        """
        state_dir = "/srv/state"
        runtime_dir = "/srv/run"
        database = "sqlite:////srv/state/other.db"
        """
    )
    env.update(
        KEYWARD_STATE_DIR=str(tmp_path / "s"),
        KEYWARD_RUNTIME_DIR=str(tmp_path / "r"),
        KEYWARD_DATABASE_URL="postgresql+psycopg://kw@db/kw",
    )
    config = load_config(path, env=env)
    assert config.state_dir == tmp_path / "s"
    assert config.runtime_dir == tmp_path / "r"
    assert config.database_url == "postgresql+psycopg://kw@db/kw"
    assert config.daemon.lock_file == tmp_path / "s" / "keyward.lock"


def test_load_config_when_file_sets_dirs_derived_paths_follow_them(write, env, user):
    config = load_config(write('state_dir = "/srv/kw"\n'), env=env)
    assert config.database_url == "sqlite:////srv/kw/keyward.db"
    assert config.runtime_dir == Path("/srv/kw/run")
    assert config.daemon.ingest_socket == Path("/srv/kw/run/ingest.sock")
    assert config.pools["default"].sinks[0].options["path"] == Path("/srv/kw/run/default.key")


def test_load_config_when_relative_env_dir_reports_variable(env):
    env["KEYWARD_STATE_DIR"] = "relative/state"
    with pytest.raises(ConfigError) as caught:
        load_config(None, env=env)
    assert caught.value.problems == [
        "environment variable KEYWARD_STATE_DIR: expected an absolute path (or one starting with ~), got 'relative/state'"
    ]


def test_load_config_when_full_file_reads_every_section(write, env):
    path = write(
        """
        log_level = "DEBUG"
        runtime_dir = "/run/kw"
        [rotation]
        min_age = "3d"
        max_age = "1w"
        grace = "0s"
        verify = false
        retry_backoff = 60
        max_backoff = "6h"
        [usage]
        poll_interval = "30s"
        monitoring = false
        [selection]
        margin = 0
        interval = "1m"
        [daemon]
        ingest_socket = ""
        ingest_tcp = "127.0.0.1:8710"
        metrics = "[::1]:9464"
        lock_file = "~/kw.lock"
        [google]
        credentials = "/etc/keyward/sa.json"
        quota_project = "billing-project"
        [pools.fast]
        model = "gemini-2.5-pro"
        margin = 0.25
        post_publish = ["systemctl", "try-restart", "app.service"]
        post_publish_timeout = "5s"
        [[pools.fast.sinks]]
        type = "file"
        path = "/run/kw/fast.env"
        format = "env"
        mode = "0640"
        group = "app"
        [[pools.fast.sinks]]
        type = "keyring"
        [[pools.fast.sinks]]
        type = "null"
        [projects.alpha-project]
        number = 123456789012
        pool = "fast"
        managed = true
        service_account = "keyward@alpha-project.iam.gserviceaccount.com"
        allowed_ips = ["203.0.113.7", "2001:db8::/32"]
        min_age = "1d"
        max_age = "2d"
        [projects.alpha-project.limits."gemini-2.5-pro"]
        rpm = 5
        rpd = 100
        [projects.beta-project]
        """
    )
    config = load_config(path, env=env)
    assert config.source == path
    assert config.log_level == "debug"
    assert config.rotation.min_age == timedelta(days=3) and config.rotation.max_age == timedelta(weeks=1)
    assert config.rotation.grace == timedelta(0) and config.rotation.verify is False
    assert config.rotation.retry_backoff == timedelta(minutes=1)
    assert config.usage.poll_interval == timedelta(seconds=30) and config.usage.monitoring is False
    assert config.selection.margin == 0.0
    assert config.daemon.ingest_socket is None
    assert config.daemon.ingest_tcp == "127.0.0.1:8710" and config.daemon.metrics == "[::1]:9464"
    assert config.daemon.lock_file == Path("~/kw.lock").expanduser()
    assert config.google.credentials == Path("/etc/keyward/sa.json")
    assert config.google.quota_project == "billing-project"
    fast = config.pools["fast"]
    assert fast.declared and fast.model == "gemini-2.5-pro" and fast.margin == 0.25
    assert fast.post_publish == ("systemctl", "try-restart", "app.service")
    assert fast.post_publish_timeout == timedelta(seconds=5)
    assert fast.sinks == (
        SinkConfig("file", {"path": Path("/run/kw/fast.env"), "format": "env", "mode": 0o640, "group": "app"}),
        SinkConfig("keyring", {"service": "keyward", "username": "fast"}),
        SinkConfig("null", {}),
    )
    alpha = config.projects["alpha-project"]
    assert alpha.number == "123456789012" and alpha.pool == "fast" and alpha.managed
    assert alpha.allowed_ips == ("203.0.113.7", "2001:db8::/32")
    assert alpha.limits == {"gemini-2.5-pro": LimitConfig(rpm=5, tpm=None, rpd=100)}
    assert config.project_ages("alpha-project") == (timedelta(days=1), timedelta(days=2))
    assert config.project_ages("beta-project") == (timedelta(days=3), timedelta(weeks=1))
    assert config.pool_margin("fast") == 0.25 and config.pool_margin("default") == 0.0
    beta = config.projects["beta-project"]
    assert beta.pool == "default" and not beta.managed and beta.service_account is None
    # beta uses the undeclared pool "default", so it exists next to the declared one
    assert set(config.pools) == {"fast", "default"} and not config.pools["default"].declared


def test_load_config_when_pools_declared_and_default_unused_has_no_implicit_pool(write, env):
    config = load_config(write("[pools.only]\n[projects.alpha-project]\npool = \"only\"\n"), env=env)
    assert set(config.pools) == {"only"}
    assert config.pools["only"].sinks[0].options["path"] == config.runtime_dir / "only.key"


def test_load_config_when_sinks_empty_list_publishes_nowhere(write, env):
    config = load_config(write("[pools.default]\nsinks = []\n"), env=env)
    assert config.pools["default"].sinks == ()


@pytest.mark.parametrize("mode", ['"0600"', '"600"', "0o600", "600"])
def test_load_config_when_file_mode_spelled_several_ways_gives_0600(write, env, mode):
    config = load_config(write(f'[[pools.default.sinks]]\ntype = "file"\npath = "/k"\nmode = {mode}\n'), env=env)
    assert config.pools["default"].sinks[0].options["mode"] == 0o600


def test_load_config_when_plugin_sink_type_registered_keeps_options_as_written(write, env):
    path = write('[[pools.default.sinks]]\ntype = "vault"\nmount = "kv"\nttl = 3\n')
    config = load_config(path, env=env, sink_types={"file", "keyring", "null", "vault"})
    assert config.pools["default"].sinks == (SinkConfig("vault", {"mount": "kv", "ttl": 3}),)


def test_load_config_when_credentials_directory_has_google_json_uses_it(write, env, tmp_path):
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "google.json").write_text("{}")
    env["CREDENTIALS_DIRECTORY"] = str(tmp_path / "creds")
    assert load_config(None, env=env).google.credentials == tmp_path / "creds" / "google.json"
    explicit = load_config(write('[google]\ncredentials = "/etc/sa.json"\n'), env=env)
    assert explicit.google.credentials == Path("/etc/sa.json")


def test_load_config_when_credentials_directory_lacks_file_uses_adc(env, tmp_path):
    env["CREDENTIALS_DIRECTORY"] = str(tmp_path)
    assert load_config(None, env=env).google.credentials is None


def test_load_config_when_path_uses_tilde_expands_it(env, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "kw.toml").write_text('[[pools.default.sinks]]\ntype = "file"\npath = "~/key"\n')
    config = load_config("~/kw.toml", env=env)
    assert config.source == tmp_path / "kw.toml"
    assert config.pools["default"].sinks[0].options["path"] == tmp_path / "key"


def test_config_repr_when_database_has_password_leaves_url_out(write, env):
    env["KEYWARD_DATABASE_URL"] = "postgresql+psycopg://kw:hunter2@db/kw"
    config = load_config(None, env=env)
    assert "hunter2" not in repr(config)


def test_config_when_built_by_hand_fills_database_from_state_dir():
    config = Config(state_dir=Path("/srv/x"))
    assert config.database_url == "sqlite:////srv/x/keyward.db"


def test_load_when_file_sink_variables_invalid_names_the_key(tmp_path):
    import pytest as _pytest

    from keyward.config import load_config
    from keyward.errors import ConfigError

    path = tmp_path / "k.toml"
    path.write_text(f'[[pools.default.sinks]]\ntype = "file"\npath = "{tmp_path}/k"\nformat = "env"\n'
                    'variables = ["GEMINI_API_KEY", "2BAD"]\n')
    with _pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert "at 'pools.default.sinks[0].variables'" in str(info.value) or "variables" in str(info.value)
    path.write_text(f'[[pools.default.sinks]]\ntype = "file"\npath = "{tmp_path}/k"\nformat = "env"\n'
                    'variables = ["GOOGLE_API_KEY"]\n')
    assert load_config(path, env={}).pools["default"].sinks[0].options["variables"] == ("GOOGLE_API_KEY",)
