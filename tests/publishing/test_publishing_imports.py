"""Layering: the light client imports nothing of the server side, and the server never imports it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "keyward"


def test_client_when_imported_loads_no_server_module():
    probe = ("import sys, keyward.client\n"
             "print(sorted(m for m in sys.modules if m.startswith(('keyward.storage', 'keyward.publishing', "
             "'keyward.usage', 'keyward.rotation', 'sqlalchemy'))))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr


def test_server_modules_never_import_the_public_client():
    offenders = []
    for sub in ("publishing", "usage", "storage", "rotation", "sinks"):
        for path in (PACKAGE / sub).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module == "keyward.client":
                    offenders.append(str(path.relative_to(PACKAGE)))
    for name in ("status.py", "daemon.py", "jobs.py"):
        tree = ast.parse((PACKAGE / name).read_text(encoding="utf-8"))
        offenders += [name for node in ast.walk(tree)
                      if isinstance(node, ast.ImportFrom) and node.module == "keyward.client"]
    assert offenders == []
