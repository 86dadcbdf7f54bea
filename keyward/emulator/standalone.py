"""Run the emulator as its own process (`python -m keyward.emulator`, the demo, e2e tests).

`serve` prints exactly one line, `emulator listening on HOST:PORT`, and flushes it, so a parent
process that started it with `port=0` can read the port; it then serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from keyward.emulator.control import Emulator
from keyward.errors import UsageError


def apply_seed(emu: Emulator, seed: dict[str, Any]) -> None:
    """Load projects, keys and settings from a seed dict shaped like the admin bodies:
    {"projects": [{projectId, number, limits?}], "keys": [{projectId, kind?, displayName?,
    serviceAccount?}], "metricsScopes": [{scopingProjectId, projectId}], "settings":
    {operationPolls?, rejectStandardKeys?, monitoringLagSeconds?, monitoringReadsPerMinute?,
    monitoringPageSize?}}.

    Raise UsageError naming the entry when the seed is not of that shape.
    """
    try:
        _apply(emu, seed)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"emulator seed: {exc.__class__.__name__} {exc} (expected {{\"projects\": "
                         "[{\"projectId\": …, \"number\": …}], \"keys\": [...], \"settings\": {...}})") from None


def _apply(emu: Emulator, seed: dict[str, Any]) -> None:
    for project in seed.get("projects", []):
        emu.add_project(project["projectId"], str(project["number"]), project.get("limits"))
    for key in seed.get("keys", []):
        emu.create_manual_key(key["projectId"], kind=key.get("kind", "auth"),
                              display_name=key.get("displayName", ""),
                              service_account=key.get("serviceAccount"))
    settings = seed.get("settings", {})
    if "operationPolls" in settings:
        emu.operation_polls = int(settings["operationPolls"])
    if "rejectStandardKeys" in settings:
        emu.reject_standard_keys = bool(settings["rejectStandardKeys"])
    if "monitoringLagSeconds" in settings:
        emu.monitoring_lag_seconds = float(settings["monitoringLagSeconds"])
    if "monitoringReadsPerMinute" in settings:
        value = settings["monitoringReadsPerMinute"]
        emu.monitoring_reads_per_minute = None if value is None else int(value)
    if "monitoringPageSize" in settings:
        emu.monitoring_page_size = int(settings["monitoringPageSize"])
    for member in seed.get("metricsScopes", []):
        emu.add_to_metrics_scope(member["scopingProjectId"], member["projectId"])


def serve(host: str = "127.0.0.1", port: int = 8089, seed: dict[str, Any] | None = None) -> None:
    """Serve until SIGINT/SIGTERM, after printing the listening line."""
    emu = Emulator()
    if seed:
        apply_seed(emu, seed)
    emu.start(host, port)
    stopping = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stopping.set())
    print(f"emulator listening on {emu.address}", flush=True)
    try:
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()


def main(argv: list[str] | None = None) -> None:
    """`python -m keyward.emulator [--host H] [--port P] [--seed FILE.json]`."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m keyward.emulator",
                                     description="Local emulator of Google's APIs for keyward.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--seed", help="JSON file with projects, keys and settings")
    args = parser.parse_args(argv)
    seed = None
    if args.seed:
        with open(args.seed, encoding="utf-8") as fh:
            seed = json.load(fh)
    serve(args.host, args.port, seed)
