"""The README's configuration example is a configuration keyward accepts."""

from __future__ import annotations

import re
from pathlib import Path

from keyward.config import load_config

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_toml_examples_when_loaded_are_valid(tmp_path):
    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(), re.S)
    assert blocks
    for number, block in enumerate(blocks):
        path = tmp_path / f"example-{number}.toml"
        path.write_text(block)
        config = load_config(path, env={"KEYWARD_STATE_DIR": str(tmp_path / "s"),
                                        "KEYWARD_RUNTIME_DIR": str(tmp_path / "r")})
        assert config.projects or config.pools
