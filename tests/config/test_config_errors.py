"""Each kind of configuration problem, reported with its file, line and key path."""

import os

import pytest

from keyward.config import load_config
from keyward.errors import ConfigError


def test_unknown_key_when_close_to_known_suggests_it(find, problems_of):
    file, problems = problems_of('[usage]\npoll_intervall = "60s"\n')
    find(problems, file, 2, "usage.poll_intervall", "unknown key 'poll_intervall' (did you mean 'poll_interval'?)")


def test_unknown_key_when_nothing_close_lists_known_keys(find, problems_of):
    file, problems = problems_of('[selection]\nzzz = 1\n')
    find(problems, file, 2, "selection.zzz", "unknown key 'zzz' (expected one of: interval, margin)")


def test_unknown_top_level_table_suggests_the_known_one(find, problems_of):
    file, problems = problems_of("log_level = 'info'\n\n[rotaton]\nmin_age = '1d'\n")
    find(problems, file, 3, "rotaton", "did you mean 'rotation'?")


def test_unknown_key_inside_sink_and_limits_is_reported_there(find, problems_of):
    file, problems = problems_of(
        """\
        [[pools.default.sinks]]
        type = "file"
        path = "/k"
        mdoe = "0600"
        [projects.alpha-project.limits."gemini-2.5-flash"]
        rpm = 1
        tmp = 5
        """
    )
    find(problems, file, 4, "pools.default.sinks[0].mdoe", "did you mean 'mode'?")
    find(problems, file, 7, 'projects.alpha-project.limits."gemini-2.5-flash".tmp', "did you mean 'tpm'?")


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"),
    [
        ("[rotation]\ngrace = 5.5\n", 2, "rotation.grace", "expected a duration like '90s', '15m', '24h', '7d'"),
        ("[rotation]\nverify = 'yes'\n", 2, "rotation.verify", "expected true or false, got the string 'yes'"),
        ("[usage]\nmonitoring = 1\n", 2, "usage.monitoring", "expected true or false"),
        ("[selection]\nmargin = 'low'\n", 2, "selection.margin", "expected a number between 0 and 1"),
        ("[daemon]\nlock_file = 5\n", 2, "daemon.lock_file", "expected a path string"),
        ("usage = 5\n", 1, "usage", "expected a table"),
        ("log_level = 'loud'\n", 1, "log_level", "expected one of debug, info, warning, error"),
        ("database = 'not a url'\n", 1, "database", "expected an SQLAlchemy URL"),
        ("[projects.alpha-project.limits.m]\nrpm = '10'\n", 2, "projects.alpha-project.limits.m.rpm", "expected a positive whole number"),
        ("[projects.alpha-project]\nnumber = 'abc'\n", 2, "projects.alpha-project.number", "digits only"),
        ("[projects.alpha-project]\nmanaged = 'true'\n", 2, "projects.alpha-project.managed", "expected true or false"),
        ("[pools.p]\nsinks = 'file'\n", 2, "pools.p.sinks", "expected [[pools.p.sinks]] tables"),
    ],
)
def test_wrong_type_names_expected_type(find, problems_of, text, line, key, fragment):
    file, problems = problems_of(text)
    find(problems, file, line, key, fragment)


def test_bad_duration_quotes_the_text(find, problems_of):
    file, problems = problems_of('\n[daemon]\n\nheartbeat = "15 secs"\n')
    find(problems, file, 4, "daemon.heartbeat", "bad duration '15 secs'")


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("[rotation]\nmin_age = '5s'\n", "rotation.min_age", "must be at least 10s, got '5s'"),
        ("[usage]\nmonitoring_lag = '2d'\n", "usage.monitoring_lag", "must be at most 1d"),
        ("[selection]\nmargin = 1.5\n", "selection.margin", "must be between 0 and 1, got 1.5"),
        ("[pools.p]\nmargin = -0.1\n", "pools.p.margin", "must be between 0 and 1"),
        ("[projects.alpha-project.limits.m]\nrpd = 0\n", "projects.alpha-project.limits.m.rpd", "must be greater than 0"),
        ("[daemon]\nmetrics = '127.0.0.1:70000'\n", "daemon.metrics", "port 70000 is out of range"),
    ],
)
def test_out_of_range_value_says_the_limit(find, problems_of, text, key, fragment):
    file, problems = problems_of(text)
    find(problems, file, 2, key, fragment)


def test_min_age_longer_than_max_age_is_reported(find, problems_of):
    file, problems = problems_of('[rotation]\nmin_age = "20d"\n')
    find(problems, file, 2, "rotation.min_age", "min_age (20d) is longer than max_age (15d)")


def test_project_ages_when_override_inverts_them_is_reported(find, problems_of):
    file, problems = problems_of('[projects.alpha-project]\nmax_age = "2d"\n')
    find(problems, file, 2, "projects.alpha-project.max_age", "min_age (7d) is longer than max_age (2d)")


def test_retry_backoff_longer_than_max_backoff_is_reported(find, problems_of):
    file, problems = problems_of('[rotation]\nmax_backoff = "10m"\n')
    find(problems, file, 2, "rotation.max_backoff", "retry_backoff (1h) is longer than max_backoff (10m)")


@pytest.mark.parametrize("project_id", ["Upper-case-id", "short", "ends-with-hyphen-", "1starts-with-digit", "under_score"])
def test_bad_project_id_is_reported_at_its_table(find, problems_of, project_id):
    file, problems = problems_of(f'# projects\n[projects."{project_id}"]\nmanaged = false\n')
    find(problems, file, 2, f"projects.{project_id}", "is not valid: a Google Cloud project id is 6 to 30")


def test_managed_project_without_service_account_is_reported(find, problems_of):
    file, problems = problems_of("[projects.alpha-project]\nnumber = '1'\nmanaged = true\n")
    find(problems, file, 1, "projects.alpha-project.service_account", "required when managed = true")


def test_bad_service_account_email_is_reported(find, problems_of):
    file, problems = problems_of("[projects.alpha-project]\nmanaged = true\nservice_account = 'me@gmail.com'\n")
    find(problems, file, 3, "projects.alpha-project.service_account", "expected a service account email")


def test_project_pool_not_declared_suggests_a_declared_one(find, problems_of):
    file, problems = problems_of('[pools.fast]\n[projects.alpha-project]\npool = "fsat"\n')
    find(problems, file, 3, "projects.alpha-project.pool", "pool 'fsat' is not declared (did you mean 'fast'?)")


def test_project_pool_other_than_default_when_no_pools_declared_is_reported(find, problems_of):
    file, problems = problems_of('[projects.alpha-project]\npool = "elsewhere"\n')
    find(problems, file, 2, "projects.alpha-project.pool", "use one of: default")


def test_bad_ip_is_reported_at_its_list_element(find, problems_of):
    file, problems = problems_of(
        """\
        [projects.alpha-project]
        managed = true
        service_account = "kw-admin@alpha-project.iam.gserviceaccount.com"
        allowed_ips = [
            "10.0.0.0/8",
            "10.0.0.300",
            "10.0.0.1/24",
        ]
        """
    )
    find(problems, file, 6, "projects.alpha-project.allowed_ips[1]", "'10.0.0.300' is not an IP address or CIDR network")
    find(problems, file, 7, "projects.alpha-project.allowed_ips[2]", "has host bits set")


def test_allowed_ips_on_unmanaged_project_is_reported(find, problems_of):
    file, problems = problems_of('[projects.alpha-project]\nallowed_ips = ["10.0.0.1"]\n')
    find(problems, file, 2, "projects.alpha-project.allowed_ips", "only used when managed = true")


def test_bad_sink_type_suggests_a_known_one(find, problems_of):
    file, problems = problems_of('[[pools.default.sinks]]\ntype = "fiel"\n')
    find(problems, file, 2, "pools.default.sinks[0].type", "unknown sink type 'fiel' (did you mean 'file'?)")


def test_sink_type_known_only_to_caller_is_checked_against_callers_set(find, problems_of):
    file, problems = problems_of('[[pools.default.sinks]]\ntype = "keyring"\n', sink_types={"file", "vault"})
    find(problems, file, 2, "pools.default.sinks[0].type", "unknown sink type 'keyring'")


def test_sink_without_type_is_reported(find, problems_of):
    file, problems = problems_of('[[pools.default.sinks]]\npath = "/k"\n')
    find(problems, file, 1, "pools.default.sinks[0].type", "missing required key 'type'")


def test_file_sink_missing_path_is_reported_at_its_table(find, problems_of):
    file, problems = problems_of('[[pools.default.sinks]]\ntype = "null"\n\n[[pools.default.sinks]]\ntype = "file"\n')
    find(problems, file, 4, "pools.default.sinks[1].path", "missing required key 'path'")


def test_file_sink_relative_path_is_reported(find, problems_of):
    file, problems = problems_of('[[pools.default.sinks]]\ntype = "file"\npath = "keys/default.key"\n')
    find(problems, file, 3, "pools.default.sinks[0].path", "expected an absolute path")


def test_file_sink_world_readable_mode_is_reported(find, problems_of):
    file, problems = problems_of('[[pools.default.sinks]]\ntype = "file"\npath = "/k"\nmode = "0644"\n')
    find(problems, file, 4, "pools.default.sinks[0].mode", 'expected "0600" or "0640"')


def test_two_pools_publishing_to_one_file_is_reported(find, problems_of):
    file, problems = problems_of(
        '[[pools.a.sinks]]\ntype = "file"\npath = "/k"\n[[pools.b.sinks]]\ntype = "file"\npath = "/k"\n'
    )
    find(problems, file, 6, "pools.b.sinks[0].path", "same place as pools.a.sinks[0]")


def test_post_publish_as_string_hints_at_a_list(find, problems_of):
    file, problems = problems_of('[pools.default]\npost_publish = "systemctl restart app"\n')
    found = find(problems, file, 2, "pools.default.post_publish", "not a string")
    assert "['systemctl', 'restart', 'app']" in found


@pytest.mark.parametrize("key", ["ingest_tcp", "metrics"])
@pytest.mark.parametrize("address", ["0.0.0.0:9464", "192.168.1.5:80", "example.com:80", "[::]:9464"])
def test_listening_address_not_loopback_is_reported(find, problems_of, key, address):
    file, problems = problems_of(f'[daemon]\n{key} = "{address}"\n')
    find(problems, file, 2, f"daemon.{key}", "not a loopback address")


def test_listening_address_without_port_is_reported(find, problems_of):
    file, problems = problems_of('[daemon]\nmetrics = "127.0.0.1"\n')
    find(problems, file, 2, "daemon.metrics", "expected HOST:PORT")


def test_ingest_tcp_and_metrics_on_one_port_is_reported(find, problems_of):
    file, problems = problems_of('[daemon]\ningest_tcp = "127.0.0.1:9000"\nmetrics = "127.0.0.1:9000"\n')
    find(problems, file, 3, "daemon.metrics", "use two ports")


def test_toml_syntax_error_gives_file_and_line(write, env):
    path = write('log_level = "info"\n\n[usage\npoll_interval = "60s"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env)
    assert caught.value.problems[0].startswith(f"{path}:3: invalid TOML: ")
    assert str(path) in str(caught.value)


def test_toml_duplicate_key_gives_its_line(write, env):
    path = write('[usage]\nmonitoring = true\nmonitoring = false\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env)
    assert caught.value.problems[0].startswith(f"{path}:3: invalid TOML: ")


def test_missing_file_names_it(tmp_path, env):
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "absent.toml", env=env)
    assert caught.value.problems == [f"{tmp_path / 'absent.toml'}: No such file or directory"]
    assert caught.value.exit_code == 2


def test_directory_instead_of_file_names_it(tmp_path, env):
    with pytest.raises(ConfigError, match="Is a directory"):
        load_config(tmp_path, env=env)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_names_it(write, env):
    path = write("")
    path.chmod(0)
    with pytest.raises(ConfigError, match="Permission denied"):
        load_config(path, env=env)


def test_file_not_utf8_gives_line(write, env, tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'log_level = "info"\n# caf\xe9\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env)
    assert caught.value.problems == [f"{path}:2: invalid UTF-8 byte"]


def test_many_problems_are_all_reported_at_once_in_line_order(find, problems_of):
    file, problems = problems_of(
        """\
        stat_dir = "/x"
        [rotation]
        max_age = "7x"
        [daemon]
        metrics = "0.0.0.0:9464"
        [pools.main]
        post_publish = "reload app"
        [[pools.main.sinks]]
        type = "fiel"
        [projects.Bad_Id]
        [projects.alpha-project]
        managed = true
        pool = "mian"
        """
    )
    expected = [
        (1, "stat_dir", "did you mean 'state_dir'?"),
        (3, "rotation.max_age", "bad duration '7x'"),
        (5, "daemon.metrics", "not a loopback address"),
        (7, "pools.main.post_publish", "not a string"),
        (9, "pools.main.sinks[0].type", "did you mean 'file'?"),
        (10, "projects.Bad_Id", "a Google Cloud project id"),
        (11, "projects.alpha-project.service_account", "required when managed = true"),
        (13, "projects.alpha-project.pool", "did you mean 'main'?"),
    ]
    for line, key, fragment in expected:
        find(problems, file, line, key, fragment)
    assert len(problems) == len(expected)
    lines = [int(p[len(file) + 1 :].split(":")[0]) for p in problems]
    assert lines == sorted(lines)


def test_config_error_message_holds_count_and_every_problem(write, env):
    path = write('[usage]\npoll_intervall = 1\nmonitoring = "no"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env)
    message = str(caught.value)
    assert message.startswith(f"{path}: 2 problem(s) found")
    assert "poll_intervall" in message and "monitoring" in message


def test_ingest_socket_path_too_long_for_unix_socket_is_reported(find, problems_of):
    file, problems = problems_of(f'[daemon]\ningest_socket = "/{"s" * 120}.sock"\n')
    find(problems, file, 2, "daemon.ingest_socket", "at most 107 bytes")


def test_bad_pool_name_is_reported_at_its_table(find, problems_of):
    file, problems = problems_of('[pools."my pool"]\nmodel = "gemini-2.5-flash"\n')
    find(problems, file, 1, 'pools."my pool"', "a pool name is letters, digits")


def test_bad_quota_project_is_reported(find, problems_of):
    file, problems = problems_of('[google]\nquota_project = "My Project"\n')
    find(problems, file, 2, "google.quota_project", "a Google Cloud project id")


def test_keyring_sink_empty_service_is_reported(find, problems_of):
    file, problems = problems_of('[[pools.default.sinks]]\ntype = "keyring"\nservice = ""\n')
    find(problems, file, 3, "pools.default.sinks[0].service", "must not be empty")


def test_null_sink_with_options_reports_them_as_unknown(find, problems_of):
    file, problems = problems_of('[[pools.default.sinks]]\ntype = "null"\npath = "/k"\n')
    find(problems, file, 3, "pools.default.sinks[0].path", "unknown key 'path'")


def test_problems_in_inline_tables_point_at_their_line(find, problems_of):
    file, problems = problems_of(
        '[pools.default]\nsinks = [\n  {type = "file", path = "/a"},\n  {type = "file", pth = "/b"},\n]\n'
    )
    find(problems, file, 4, "pools.default.sinks[1].pth", "did you mean 'path'?")
