"""FileSink's atomicity under real concurrency: a reader never sees a torn file, a killed writer
never leaves one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sink_contract import new_fake_key

from keyward.sinks.file import FileSink

REPO = Path(__file__).resolve().parents[2]

READER = """
import os, sys, json
path, stop = sys.argv[1], sys.argv[2]
seen, reads = set(), 0
while True:
    try:
        with open(path, "rb") as fh:
            seen.add(fh.read())
    except FileNotFoundError:
        seen.add(b"<missing>")
    reads += 1
    if reads == 1:
        print("ready", flush=True)
    if reads % 32 == 0 and os.path.exists(stop):
        break
json.dump({"reads": reads, "seen": sorted(d.decode("utf-8", "replace") for d in seen)}, sys.stdout)
"""

WRITER = """
import json, sys
from keyward.sinks.file import FileSink
path, fmt = sys.argv[1], sys.argv[2]
keys = json.load(sys.stdin)
sink = FileSink("default", path=path, format=fmt)
n = 0
while True:
    sink.publish(keys[n % len(keys)], f"key-{n}")
    if n == 0:
        print("started", flush=True)
    n += 1
"""


def _spawn(code: str, *args: str, stdin: int | None = subprocess.DEVNULL) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", code, *args], stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _render(key: str, fmt: str) -> str:
    return f"GEMINI_API_KEY={key}\n" if fmt == "env" else f"{key}\n"


@pytest.mark.parametrize("fmt", ["raw", "env"])
def test_publish_when_reader_polls_during_1000_replacements_never_tears(tmp_path, fmt):
    path = str(tmp_path / "default.key")
    sink = FileSink("default", path=path, format=fmt)
    first = new_fake_key()
    sink.publish(first, "key-first")
    written = {_render(first, fmt)}
    stop = tmp_path / "stop"
    reader = _spawn(READER, path, str(stop))
    try:
        assert reader.stdout is not None
        assert reader.stdout.readline() == "ready\n", reader.stderr.read() if reader.stderr else ""
        for n in range(1000):
            key = new_fake_key("auth" if n % 2 else "standard")
            sink.publish(key, f"key-{n}")
            written.add(_render(key, fmt))
        stop.touch()
        out, err = reader.communicate(timeout=60)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.communicate()
    assert reader.returncode == 0, err
    report = json.loads(out)
    torn = [content for content in report["seen"] if content not in written]
    assert torn == [], f"{len(torn)} torn or unknown contents in {report['reads']} reads"
    assert len(report["seen"]) >= 2, "the reader never overlapped the writer"


def test_publish_when_writer_killed_mid_loop_leaves_complete_file(tmp_path):
    path = str(tmp_path / "default.env")
    keys = [new_fake_key() for _ in range(200)]
    rendered = {_render(k, "env") for k in keys}
    for _ in range(3):
        writer = _spawn(WRITER, path, "env", stdin=subprocess.PIPE)
        try:
            assert writer.stdin is not None and writer.stdout is not None
            writer.stdin.write(json.dumps(keys))
            writer.stdin.close()
            assert writer.stdout.readline() == "started\n"
            # Wait until the writer has replaced the file many times, so the kill lands mid-loop.
            changes, last, deadline = 0, None, time.monotonic() + 30
            while changes < 20:
                assert time.monotonic() < deadline, "the writer made no progress"
                with open(path) as fh:
                    content = fh.read()
                if content != last:
                    changes, last = changes + 1, content
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait(timeout=30)
        finally:
            if writer.poll() is None:
                writer.kill()
            writer.wait()
            for stream in (writer.stdout, writer.stderr):
                if stream is not None:
                    stream.close()
        assert writer.returncode == -signal.SIGKILL
        with open(path) as fh:
            assert fh.read() in rendered
    sink = FileSink("default", path=path, format="env")
    sink.cleanup_stale_temp_files()
    assert os.listdir(tmp_path) == ["default.env"]
    assert sink.read() in keys
