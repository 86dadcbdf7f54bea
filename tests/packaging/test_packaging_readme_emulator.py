"""The README documents the emulator's seed format and every admin endpoint, truthfully."""

from __future__ import annotations

import json
import re
from pathlib import Path

from keyward.emulator import Emulator
from keyward.emulator.admin import Admin
from keyward.emulator.standalone import apply_seed

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_seed_example_when_applied_creates_what_it_says():
    seed = json.loads(re.search(r"```json\n(.*?)```", README, re.S).group(1))
    emu = Emulator()

    apply_seed(emu, seed)

    assert [k["displayName"] for k in emu.keys("my-project-1")] == ["made by hand"]
    assert emu.operation_polls == 2 and emu.reject_standard_keys is True
    assert emu.monitoring_lag_seconds == 120
    assert emu.monitoring_reads_per_minute == 6000 and emu.monitoring_page_size == 1000
    assert emu.snapshot()["metricsScopes"] == {"210987654321": ["123456789012"]}


def test_readme_when_read_documents_every_admin_endpoint():
    documented = set(re.findall(r"`(GET|POST) (/_emulator/[\w:]+)", README))
    served = {(route.method, route.pattern.pattern.replace("\\", "").rstrip("$").lstrip("^"))
              for route in Admin(Emulator()).routes()}
    assert {(m, p) for m, p in served} <= documented, served - documented
