"""Shared pieces of the rotation tests: the projects, a hand-moved clock, the config they run on."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

MODEL = "gemini-2.5-flash"
PROJECTS = {"alpha-proj": "111111111111", "beta-proj": "222222222222", "gamma-proj": "333333333333"}
START = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime = START):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class FakeSleep:
    def __init__(self):
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def sa(project: str) -> str:
    return f"keyward@{project}.iam.gserviceaccount.com"


def config_text(tmp_path: Path, *, unmanaged: tuple[str, ...] = ("gamma-proj",), verify: bool = True,
                extra: str = "") -> str:
    lines = [f"""
        state_dir = "{tmp_path / 'state'}"
        runtime_dir = "{tmp_path / 'run'}"

        [rotation]
        min_age = "7d"
        max_age = "15d"
        grace = "24h"
        verify = {'true' if verify else 'false'}
        retry_backoff = "1h"
        max_backoff = "8h"
        retry_budget = "20s"
        operation_timeout = "20s"

        [pools.main]
        model = "{MODEL}"
        sinks = [{{ type = "null" }}]
    """]
    for project, number in PROJECTS.items():
        managed = project not in unmanaged
        lines.append(f"""
        [projects.{project}]
        number = "{number}"
        pool = "main"
        managed = {'true' if managed else 'false'}
        """ + (f'service_account = "{sa(project)}"\n' if managed else ""))
    return textwrap.dedent("".join(lines)) + textwrap.dedent(extra)
