import textwrap
import tomllib

from keyward.config.locate import KeyLocator

TEXT = textwrap.dedent(
    '''\
    # comment with [brackets] and key = value
    state_dir = "/x"   # trailing comment
    [usage]
    poll_interval = "60s"
    [[pools.a.sinks]]
    type = "file"
    [[pools.a.sinks]]
    type = 'keyring'
    note = """
    [not.a.table]
    fake = 1"""
    [pools.a.sinks.extra]
    [projects."my-project-1".limits."gemini-2.5-flash"]
    rpm = 10
    [projects.p2]
    allowed_ips = [
      "1.2.3.4",  # ] not the end
      "bad",
    ]
    a.b."c.d" = {x = 1, y = {z = [1, {w = "}"}]}}
    after = 'done'
    '''
)


def locate(*path):
    return KeyLocator(TEXT).line_of(path)


def test_locator_text_is_valid_toml():
    tomllib.loads(TEXT)


def test_locator_when_plain_and_table_keys_gives_their_lines():
    assert locate("state_dir") == 2
    assert locate("usage") == 3
    assert locate("usage", "poll_interval") == 4


def test_locator_when_array_of_tables_counts_indexes():
    assert locate("pools", "a", "sinks", 0, "type") == 6
    assert locate("pools", "a", "sinks", 1) == 7
    assert locate("pools", "a", "sinks", 1, "type") == 8


def test_locator_when_multiline_string_skips_its_content():
    assert locate("pools", "a", "sinks", 1, "note") == 9
    assert locate("not") is None


def test_locator_when_subtable_of_array_element_attaches_to_last_element():
    assert locate("pools", "a", "sinks", 1, "extra") == 12


def test_locator_when_quoted_keys_unquotes_them():
    assert locate("projects", "my-project-1", "limits", "gemini-2.5-flash", "rpm") == 14


def test_locator_when_multiline_array_gives_each_element_its_line():
    assert locate("projects", "p2", "allowed_ips") == 16
    assert locate("projects", "p2", "allowed_ips", 1) == 18


def test_locator_when_dotted_keys_and_inline_tables_records_nested_keys():
    assert locate("projects", "p2", "a", "b", "c.d", "y", "z", 1, "w") == 20
    assert locate("projects", "p2", "after") == 21


def test_locator_when_key_missing_falls_back_to_nearest_parent():
    assert locate("projects", "p2", "service_account") == 15
    assert locate("nothing", "here") is None


def test_locator_when_text_is_not_toml_does_not_raise():
    locator = KeyLocator("a = 1\n[[broken\nb = {")
    assert locator.line_of(("a",)) == 1
