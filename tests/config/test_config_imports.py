"""`keyward current` loads the configuration on every call: it must not pull in heavy libraries."""

import subprocess
import sys

HEAVY = ("sqlalchemy", "click", "google", "googleapiclient", "keyring", "apscheduler", "keyward.storage")


def test_import_keyward_config_when_loading_a_file_imports_no_heavy_library(tmp_path):
    path = tmp_path / "keyward.toml"
    path.write_text('[usage]\npoll_interval = "60s"\n[projects.alpha-project]\nallowed_ips = []\n')
    code = (
        "import sys, keyward.config as c\n"
        f"c.load_config({str(path)!r}, env={{}})\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m.startswith('keyward.storage'))\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
