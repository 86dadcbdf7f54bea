"""How long choosing a pool's key takes as the pool grows: the daemon's timer path and an exhausting 429.

For each N (projects in one pool, one active key each, three minutes of usage) it times, in one
process of the installed package:

    choose() alone             the pure least-loaded choice over N candidates
    timer path                 what runs every selection.interval: read loads, choose, check the
                               sinks (nothing changed, so nothing is recorded and a sink is only
                               stat'ed, not read, once its file is older than 50 ms); without
                               a daemon (from the database) and in the daemon (kept loads), and
                               in the daemon right after a report touched a project
    429 -> another key         an exhausting per-day 429 reported for the published key until the
                               pool's file holds another key: by a process without a daemon, and
                               inside the daemon (what its ingest socket runs)

and, measured in the same run, the references: LiteLLM's Router choosing among N deployments with
usage-based-routing-v2 (when litellm is installed) and the serial floor of N calls to `choose()`'s
input building. Growth with N is printed for each row. Targets: timer path <= 1 ms at 1,000 and
<= 5 ms at 10,000; 429 -> new key p99 < 20 ms at 10,000.

    python bench/selection_speed.py [--quick] [--sizes 100,1000,10000] [--runs R]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench helpers beside this file only

import _world  # noqa: E402

PER_DAY_429 = {"error": {
    "code": 429, "status": "RESOURCE_EXHAUSTED",
    "message": "You exceeded your current quota, please check your plan and billing details.",
    "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
        "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
        "quotaDimensions": {"location": "global", "model": _world.MODEL}, "quotaValue": "250"}]}]}}


def ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1000


def measure(n: int, runs: int) -> dict[str, float]:
    from keyward.config import load_config
    from keyward.context import Context
    from keyward.publishing.service import publish_pools
    from keyward.quota.selection import Candidate, choose
    from keyward.sinks.file import read_published_file
    from keyward.usage.accounting import record_error, record_usage
    from keyward.usage.loads import LoadBook
    from keyward.usage.reporter import send_error

    root = _world.sandbox()
    config, env = _world.build(root, n)
    os.environ.update(env)  # the reporting path finds the config's database the way a tool would
    ctx = Context(load_config(config, env=env), env=env)
    out: dict[str, float] = {}
    now = datetime.now(timezone.utc)
    candidates = [Candidate(f"p{i}", f"k{i}", (i * 37 % 1000) / 1000, None) for i in range(n)]
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        choose(candidates, "k5", now, 0.1)
        samples.append(time.perf_counter() - t0)
    out["choose() alone"] = ms(samples)


    key_file = str(root / "run" / "p0.key")
    publish_pools(ctx, trigger="bench")  # the first publication writes the file
    samples = []
    for _ in range(max(5, runs)):
        before = read_published_file(key_file, "raw")
        t0 = time.perf_counter()
        send_error(429, json.dumps(PER_DAY_429), pool="p0", config_path=str(config))
        if read_published_file(key_file, "raw") == before:
            raise SystemExit("the 429 did not move the published key")
        samples.append(time.perf_counter() - t0)
    out["429 -> another key, no daemon (p50)"] = ms(samples)
    out["429 -> another key, no daemon (p99)"] = p99(samples)
    publish_pools(ctx, trigger="bench")
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        publish_pools(ctx, trigger="timer")
        samples.append(time.perf_counter() - t0)
    out["timer path, no daemon (db)"] = ms(samples)

    ctx.loads = LoadBook()  # what `keyward run` holds
    publish_pools(ctx, trigger="timer")  # fills the book, as the daemon's start does
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        publish_pools(ctx, trigger="timer")
        samples.append(time.perf_counter() - t0)
    out["timer path, daemon (kept loads)"] = ms(samples)

    samples = []
    for i in range(runs):
        record_usage(ctx, key_id=f"kw-bench-{i:05d}", requests=1)  # a report touches one project
        t0 = time.perf_counter()
        publish_pools(ctx, trigger="timer")
        samples.append(time.perf_counter() - t0)
    out["timer path after a report, daemon"] = ms(samples)

    samples = []
    for _ in range(max(5, runs)):
        before = read_published_file(key_file, "raw")
        t0 = time.perf_counter()
        record_error(ctx, 429, json.dumps(PER_DAY_429), pool="p0")
        if read_published_file(key_file, "raw") == before:
            raise SystemExit("the 429 did not move the published key")
        samples.append(time.perf_counter() - t0)
    out["429 -> another key, daemon (p50)"] = ms(samples)
    out["429 -> another key, daemon (p99)"] = p99(samples)
    ctx.loads = None
    ctx.close()
    out["LiteLLM Router select"] = litellm_ms(n, runs)
    return out


def litellm_ms(n: int, runs: int) -> float | None:
    """LiteLLM's Router choosing among n deployments (usage-based-routing-v2), or None without it."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # its bundled copy, no network
    try:
        from litellm import Router
    except ImportError:
        return None
    import asyncio

    router = Router(model_list=[{"model_name": "gemini", "litellm_params": {
        "model": "gemini/gemini-2.5-flash", "api_key": f"fake-{i}", "rpm": 60, "tpm": 1_000_000}}
        for i in range(n)], routing_strategy="usage-based-routing-v2")
    messages = [{"role": "user", "content": "hi"}]
    loop = asyncio.new_event_loop()
    try:
        def select():
            return loop.run_until_complete(router.async_get_available_deployment(
                model="gemini", request_kwargs={}, messages=messages))

        select()  # warm up
        samples = []
        for _ in range(runs):
            t0 = time.perf_counter()
            select()
            samples.append(time.perf_counter() - t0)
    finally:
        loop.close()
    return ms(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 20 and 100, few runs (for CI)")
    parser.add_argument("--sizes", default=None, help="comma-separated N (default 100,1000,10000)")
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args()
    sizes = [int(x) for x in (args.sizes or ("20,100" if args.quick else "100,1000,10000")).split(",")]
    runs = args.runs or (5 if args.quick else 21)
    print(f"keyward from {_world.installed_from()}")
    print(f"machine: {_world.machine()}")
    results = {n: measure(n, runs) for n in sizes}
    rows = list(next(iter(results.values())))
    width = max(map(len, rows))
    print(f"{'median ms, ' + str(runs) + ' runs':<{width}}" + "".join(f"{'N=' + str(n):>12}" for n in sizes)
          + "  growth")
    for row in rows:
        values = [results[n][row] for n in sizes]
        cells = "".join(f"{v:>12.3f}" if v is not None else f"{'n/a':>12}" for v in values)
        known = [(n, v) for n, v in zip(sizes, values) if v is not None]
        print(f"{row:<{width}}{cells}  {_world.growth(known) if known else 'litellm not installed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
