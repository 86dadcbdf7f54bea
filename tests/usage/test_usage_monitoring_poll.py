"""The Monitoring poller against the emulator over real HTTP: traffic made with real Gemini calls,
merged with local reports of the same traffic without counting it twice, and faults isolated."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest
from usage_world import MODEL, POOL, make_world

from keyward.google import gemini
from keyward.google.monitoring import MonitoringClient
from keyward.sources.cloud_monitoring import CloudMonitoringSource
from keyward.storage import store as q
from keyward.usage import accounting

PROJECTS = {"alpha-one": ("alpha-one", "111111111111"), "beta-two": ("beta-two", "222222222222"),
            "gamma-three": ("gamma-three", "333333333333")}
LIMITS = {MODEL: {"rpm": 100, "tpm": 100000, "rpd": 1000}}


@pytest.fixture
def emu(emulated):
    emu = emulated(dict(PROJECTS.values()), LIMITS)
    emu.monitoring_lag_seconds = 0
    return emu


@pytest.fixture
def world(tmp_path, sqlite_url, emu):
    made = {p: emu.create_manual_key(p) for p in PROJECTS}
    clock = lambda: datetime.fromtimestamp(emu.now(), timezone.utc)  # noqa: E731
    w = make_world(tmp_path, sqlite_url, {p: None for p in PROJECTS}, clock=clock,
                   given_keys={p: (k["keyString"], k["uid"]) for p, k in made.items()})
    yield w
    w.ctx.close()


class NoSleep:
    def __init__(self):
        self.slept = 0.0

    def __call__(self, seconds: float) -> None:
        self.slept += seconds


def source() -> CloudMonitoringSource:
    return CloudMonitoringSource(MonitoringClient(sleep=NoSleep(), retry_budget=5.0))


def rpd(world) -> dict[str, int]:
    with world.ctx.store.read() as s:
        return {l.project_id: l.usage.rpd
                for l in accounting.pool_loads(s, q.get_pool(s, POOL), world.ctx.now())}


def traffic(world, project_id: str, n: int) -> int:
    tokens = 0
    for i in range(n):
        answer = gemini.generate_content(world.secrets[project_id], MODEL, "count these words " * (i + 1))
        tokens += answer["usageMetadata"]["promptTokenCount"]
    return tokens


def test_poll_counts_each_projects_requests_per_key(world, emu):
    traffic(world, "alpha-one", 3)
    traffic(world, "beta-two", 2)
    summary = accounting.poll_monitoring(world.ctx, source=source(), force=True)
    assert summary.failures == {}
    assert summary.projects["alpha-one"].by_key == {world.keys["alpha-one"]: 3}
    assert summary.projects["beta-two"].by_key == {world.keys["beta-two"]: 2}
    assert rpd(world) == {"alpha-one": 3, "beta-two": 2, "gamma-three": 0}


def test_poll_and_local_reports_of_the_same_traffic_count_once(world, emu):
    tokens = traffic(world, "alpha-one", 4)
    accounting.record_usage(world.ctx, key=world.secrets["alpha-one"], requests=4, input_tokens=tokens)
    accounting.poll_monitoring(world.ctx, source=source(), force=True)
    accounting.poll_monitoring(world.ctx, source=source(), force=True)  # re-reading is idempotent
    with world.ctx.store.read() as s:
        load = {l.project_id: l for l in accounting.pool_loads(s, q.get_pool(s, POOL), world.ctx.now())}
    assert load["alpha-one"].usage.rpd == 4 and load["alpha-one"].usage.rpm == 4
    assert load["alpha-one"].usage.tpm == tokens


def test_poll_fills_in_traffic_no_tool_reported(world, emu):
    traffic(world, "alpha-one", 2)
    accounting.record_usage(world.ctx, key=world.secrets["alpha-one"], requests=1)  # one of two told
    emu.advance(60)
    traffic(world, "alpha-one", 1)
    accounting.poll_monitoring(world.ctx, source=source(), force=True)
    assert rpd(world)["alpha-one"] == 3


def test_poll_when_one_project_gets_a_503_storm_logs_it_and_goes_on(world, emu, caplog):
    traffic(world, "alpha-one", 1)
    traffic(world, "beta-two", 2)
    emu.inject_fault("monitoring", r"/projects/beta-two/", status=503, count=1000)
    with caplog.at_level(logging.WARNING, logger="keyward.usage.monitoring_poll"):
        summary = accounting.poll_monitoring(world.ctx, source=source(), force=True)
    assert set(summary.failures) == {"beta-two"} and "alpha-one" in summary.projects
    assert any("beta-two" in r.getMessage() for r in caplog.records)
    assert rpd(world)["alpha-one"] == 1 and rpd(world)["beta-two"] == 0
    emu.clear_faults()  # the storm is over
    emu.advance(120)
    summary = accounting.poll_monitoring(world.ctx, source=source(), force=True)
    assert summary.failures == {} and rpd(world)["beta-two"] == 2  # nothing lost


def test_poll_when_monitoring_sends_malformed_json_fails_that_project_only(world, emu):
    traffic(world, "gamma-three", 2)
    emu.inject_fault("monitoring", r"/projects/gamma-three/", malformed=True, count=1000)
    summary = accounting.poll_monitoring(world.ctx, source=source(), force=True)
    assert set(summary.failures) == {"gamma-three"}
    assert set(summary.projects) == {"alpha-one", "beta-two"}


def test_poll_is_skipped_when_monitoring_is_off_unless_forced(tmp_path, sqlite_url, emu):
    w = make_world(tmp_path, sqlite_url, {"alpha-one": None}, extra="[usage]\nmonitoring = false")
    try:
        assert accounting.poll_monitoring(w.ctx, source=source()).skipped
    finally:
        w.ctx.close()


def test_refresh_limits_reads_google_for_projects_without_config_limits(world, emu):
    outcome = accounting.refresh_limits(world.ctx)
    assert outcome == {p: "ok" for p in PROJECTS}
    with world.ctx.store.read() as s:
        load = {l.project_id: l for l in accounting.pool_loads(s, q.get_pool(s, POOL), world.ctx.now())}
    assert load["alpha-one"].limits.rpm == 100 and load["alpha-one"].limit_source == "google"


def test_poll_without_a_source_uses_a_client_per_worker_and_counts_every_project(world, emu):
    traffic(world, "alpha-one", 2)
    traffic(world, "gamma-three", 1)
    emu.inject_fault("monitoring", status=0, latency_ms=50, count=6)  # every read a little slow
    summary = accounting.poll_monitoring(world.ctx, force=True)
    assert summary.failures == {}
    assert rpd(world) == {"alpha-one": 2, "beta-two": 0, "gamma-three": 1}


class BarrierSource:
    """A thread-safe fake source whose reads wait until `parties` of them run at once."""

    def __init__(self, parties: int):
        import threading

        self.barrier = threading.Barrier(parties, timeout=20)

    def read(self, project_id, start, end):
        self.barrier.wait()  # raises BrokenBarrierError if the poll ran projects one at a time
        return []


def test_poll_runs_as_many_projects_at_once_as_poll_workers(tmp_path, sqlite_url, emu):
    w = make_world(tmp_path, sqlite_url, {p: None for p in PROJECTS}, extra="[usage]\npoll_workers = 3\n")
    try:
        shared = BarrierSource(3)
        summary = accounting.poll_monitoring(w.ctx, source_factory=lambda: shared, force=True)
    finally:
        w.ctx.close()
    assert summary.failures == {} and sorted(summary.projects) == sorted(PROJECTS)
