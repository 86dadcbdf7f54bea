import re
import tomllib
from pathlib import Path

from keyward.config import example_config, load_config
from keyward.config.pools import FILE_SINK, KEYRING_SINK, POOL
from keyward.config.projects import LIMIT, PROJECT
from keyward.config.load import TOP_LEVEL
from keyward.config.sections import SECTIONS

# "# key = value" or "# [table]" lines are commented-out settings; other comments are prose.
SETTING = re.compile(r"^# ((?:\[\[?[A-Za-z][\w.\"-]*\]\]?)|(?:[a-z_]+ = .+))$")


def uncommented(text: str) -> str:
    return "\n".join(SETTING.sub(r"\1", line) for line in text.splitlines()) + "\n"


def test_example_config_when_loaded_as_written_declares_no_sample_project(tmp_path, env):
    path = tmp_path / "keyward.toml"
    path.write_text(example_config())
    config = load_config(path, env=env)
    assert config.pools["default"].declared
    assert config.projects == {} or not config.projects  # nothing to manage until the user says so


def test_example_config_when_uncommented_declares_the_sample_projects(tmp_path, env):
    path = tmp_path / "keyward.toml"
    path.write_text(uncommented(example_config()))
    config = load_config(path, env=env)
    assert config.pools["default"].sinks[0].options["path"] == Path("/run/keyward/default.key")
    managed, unmanaged = config.projects["my-project-1"], config.projects["my-project-2"]
    assert managed.managed and managed.service_account.endswith(".iam.gserviceaccount.com")
    assert managed.number == "123456789012" and managed.allowed_ips
    assert not unmanaged.managed


def test_example_config_when_every_setting_uncommented_is_still_accepted(tmp_path, env):
    path = tmp_path / "keyward.toml"
    path.write_text(uncommented(example_config()))
    config = load_config(path, env=env)
    assert [sink.type for sink in config.pools["default"].sinks] == ["file", "keyring"]
    assert config.daemon.metrics == "127.0.0.1:9464"


def test_example_config_when_uncommented_shows_the_defaults(tmp_path, env):
    plain = tmp_path / "plain.toml"
    plain.write_text(example_config())
    full = tmp_path / "full.toml"
    full.write_text(uncommented(example_config()))
    before, after = load_config(plain, env=env), load_config(full, env=env)
    for section in ("rotation", "usage", "selection"):
        assert getattr(before, section) == getattr(after, section), section
    assert before.daemon.rotation_check == after.daemon.rotation_check
    assert before.daemon.heartbeat == after.daemon.heartbeat


def test_example_config_documents_every_key(env):
    document = tomllib.loads(uncommented(example_config()))
    assert set(TOP_LEVEL) <= set(document)
    for name, (_, schema) in SECTIONS.items():
        assert set(schema) == set(document[name]), name
    pool = document["pools"]["default"]
    assert set(POOL) == set(pool)
    file_sink, keyring_sink = pool["sinks"]
    assert set(FILE_SINK) == set(file_sink) and set(KEYRING_SINK) == set(keyring_sink)
    project = document["projects"]["my-project-1"]
    assert set(PROJECT) == set(project)
    assert set(LIMIT) == set(project["limits"]["gemini-2.5-flash"])


def test_example_config_as_written_bakes_in_no_path_of_this_machine(tmp_path, env):
    text = example_config()
    settings = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert not any("/" in line for line in settings), settings
    assert str(Path.home()) not in text and "/run/user/" not in text


def test_example_config_when_runtime_dir_given_shows_it_only_in_comments(tmp_path, env):
    text = example_config(runtime_dir=tmp_path / "run")
    assert f'# path = "{tmp_path / "run"}/default.key"' in text
    path = tmp_path / "keyward.toml"
    path.write_text(uncommented(text))
    sink = load_config(path, env=env).pools["default"].sinks[0]
    assert sink.options["path"] == tmp_path / "run" / "default.key"


def test_example_config_holds_no_key_shaped_strings():
    assert not re.search(r"AIza[0-9A-Za-z_-]{10,}|AQ\.[0-9A-Za-z_-]{10,}", example_config())
