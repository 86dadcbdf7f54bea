"""The sink registry: built-ins by name, plugins through entry points, clear errors otherwise."""

from __future__ import annotations

import logging
import textwrap

import pytest

from keyward.errors import ConfigError
from keyward.sinks import FileSink, KeyringSink, NullSink, build_sink, sink_types

PLUGIN = '''
from keyward.sinks.base import Sink

class MemorySink(Sink):
    type_name = "memory"
    option_names = frozenset({"label"})

    def __init__(self, pool, **options):
        super().__init__(pool, **options)
        self.label = options.get("label")
        self.secret = None

    def publish(self, secret, key_id):
        self.secret = secret

    def read(self):
        return self.secret

NotASink = object
'''


@pytest.fixture
def plugin_dist(tmp_path, monkeypatch):
    """Install, for this test only, a distribution declaring sinks in the `keyward.sinks` group."""
    (tmp_path / "kw_memory_sink.py").write_text(PLUGIN)
    info = tmp_path / "kw_memory_sink-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kw-memory-sink\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [keyward.sinks]
        memory = kw_memory_sink:MemorySink
        broken = kw_memory_sink_missing:Sink
        notasink = kw_memory_sink:NotASink
        file = kw_memory_sink:MemorySink
    """))
    monkeypatch.syspath_prepend(str(tmp_path))


def test_sink_types_when_no_plugins_lists_built_ins():
    types = sink_types()
    assert {"file": FileSink, "keyring": KeyringSink, "null": NullSink}.items() <= types.items()


def test_build_sink_when_built_in_does_not_read_entry_points(monkeypatch, tmp_path):
    import importlib.metadata

    def refuse(**kwargs):
        raise AssertionError("entry points were loaded for a built-in sink")

    monkeypatch.setattr(importlib.metadata, "entry_points", refuse)
    sink = build_sink("default", "file", {"type": "file", "path": str(tmp_path / "k")})
    assert isinstance(sink, FileSink) and sink.pool == "default"


def test_build_sink_when_plugin_registered_builds_it(plugin_dist):
    sink = build_sink("default", "memory", {"label": "x"})
    assert type(sink).__name__ == "MemorySink" and sink.label == "x"
    assert "memory" in sink_types()


def test_sink_types_when_plugins_broken_skips_and_logs_them(plugin_dist, caplog):
    with caplog.at_level(logging.WARNING, logger="keyward.sinks"):
        types = sink_types()
    assert "broken" not in types and "notasink" not in types
    assert types["file"] is FileSink  # a plugin cannot take over a built-in name
    logged = caplog.text
    assert "sink plugin broken" in logged and "failed to load" in logged
    assert "sink plugin notasink" in logged and "not a Sink subclass" in logged
    assert "'file' is a built-in sink" in logged


def test_build_sink_when_type_unknown_raises_config_error_with_suggestion():
    with pytest.raises(ConfigError, match=r"unknown sink type 'fiel'; did you mean 'file'\? \(known: file, keyring, null"):
        build_sink("default", "fiel", {})


def test_build_sink_when_options_wrong_raises_config_error_naming_pool():
    with pytest.raises(ConfigError, match="file sink of pool 'ci' is misconfigured\n  unknown option 'colour'"):
        build_sink("ci", "file", {"path": "/run/k", "colour": "red"})


def test_import_when_reading_published_file_stays_light(python_runner):
    result = python_runner(
        "import sys\n"
        "before = set(sys.modules)\n"
        "from keyward.sinks.file import read_published_file\n"
        "heavy = {'keyring', 'importlib.metadata', 'tempfile', 'subprocess', 'sqlalchemy', 'click'}\n"
        "print(sorted(heavy & (set(sys.modules) - before)))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
