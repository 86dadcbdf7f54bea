from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request


def test_emulator_command_when_started_serves_until_sigterm(tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"projects": [{"projectId": "seed-project-1", "number": "42"}]}))
    proc = subprocess.Popen([sys.executable, "-m", "keyward", "emulator", "--port", "0", "--seed", str(seed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        line = proc.stdout.readline()
        assert line.startswith("emulator listening on 127.0.0.1:"), line + proc.stderr.read()
        address = line.split()[-1]
        with urllib.request.urlopen(f"http://{address}/_emulator/state", timeout=10) as response:
            state = json.load(response)
        assert "seed-project-1" in json.dumps(state)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        proc.stdout.close()
        proc.stderr.close()


def test_emulator_command_when_seed_has_wrong_shape_exits_2_saying_so(tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"projects": [{"projectId": "seed-project-1"}]}))
    result = subprocess.run([sys.executable, "-m", "keyward", "emulator", "--seed", str(seed)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "emulator seed" in result.stderr and "number" in result.stderr


def test_emulator_command_when_seed_is_not_json_exits_2_naming_the_file(tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text("{not json")
    result = subprocess.run([sys.executable, "-m", "keyward", "emulator", "--seed", str(seed)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and str(seed) in result.stderr and "not valid JSON" in result.stderr
