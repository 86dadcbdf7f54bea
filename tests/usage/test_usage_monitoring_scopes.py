"""The Monitoring poll through metrics scopes, against the emulator over real HTTP: members read a
scope at a time and counted exactly as when read one by one, paging, per-project windows, a scope
that fails, membership that cannot be read, projects outside every scope, and the read pace
keeping a per-project poll under Google's read quota."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from usage_world import MODEL, POOL, make_world

from keyward.emulator.clock import pacific_day_start
from keyward.google import gemini
from keyward.google.metrics_scopes import MetricsScopesClient
from keyward.google.monitoring import MonitoringClient
from keyward.google.read_pace import ReadPace
from keyward.sources.cloud_monitoring import CloudMonitoringSource
from keyward.storage import store as q
from keyward.usage import accounting

SCOPE = ("watch-tower", "900000000000")
PROJECTS = {"alpha-one": "111111111111", "beta-two": "222222222222",
            "gamma-three": "333333333333", "delta-four": "444444444444"}
MEMBERS = ("alpha-one", "beta-two", "gamma-three")  # delta-four is in no scope
LIMITS = {MODEL: {"rpm": 100, "tpm": 100000, "rpd": 1000}}


class NoSleep:
    def __call__(self, seconds: float) -> None:
        pass


def to_pacific_noon(emu) -> None:
    """Move the emulator's clock (this module's own) to the next noon in America/Los_Angeles, so
    no test's few hours cross the Pacific midnight where a first poll's window starts."""
    now = emu.now()
    noon = pacific_day_start(now) + 12 * 3600  # DST days are 23 or 25 h; noon is noon either way
    if noon < now:
        noon = pacific_day_start(now + 24 * 3600) + 12 * 3600
    emu.advance(noon - now)


@pytest.fixture
def emu(emulated):
    emu = emulated({SCOPE[0]: SCOPE[1], **PROJECTS}, LIMITS)
    to_pacific_noon(emu)
    emu.monitoring_lag_seconds = 0
    for project_id in MEMBERS:
        emu.add_to_metrics_scope(SCOPE[0], project_id)
    emu.monitoring_reads_per_minute = 100_000  # counted, never reached
    return emu


def world_for(tmp_path, sqlite_url, emu, *, numbers=PROJECTS, scopes=(SCOPE[0],), extra=""):
    made = {p: emu.create_manual_key(p) for p in PROJECTS}
    clock = lambda: datetime.fromtimestamp(emu.now(), timezone.utc)  # noqa: E731
    listed = ", ".join(f'"{s}"' for s in scopes)
    return make_world(tmp_path, sqlite_url, {p: None for p in PROJECTS}, clock=clock,
                      given_keys={p: (k["keyString"], k["uid"]) for p, k in made.items()},
                      numbers=dict(numbers), extra=f"[usage]\nmetrics_scopes = [{listed}]\n{extra}")


@pytest.fixture
def world(tmp_path, sqlite_url, emu):
    w = world_for(tmp_path, sqlite_url, emu)
    yield w
    w.ctx.close()


def source(pace=None) -> CloudMonitoringSource:
    return CloudMonitoringSource(MonitoringClient(sleep=NoSleep(), retry_budget=5.0, pace=pace))


def scopes_client() -> MetricsScopesClient:
    return MetricsScopesClient(sleep=NoSleep(), retry_budget=5.0)


def poll(world, **kwargs):
    kwargs.setdefault("source_factory", source)
    kwargs.setdefault("scopes_client", scopes_client())
    return accounting.poll_monitoring(world.ctx, force=True, **kwargs)


def traffic(world, project_id: str, n: int) -> None:
    for _ in range(n):
        gemini.generate_content(world.secrets[project_id], MODEL, "count these words")


def rpd(world) -> dict[str, int]:
    with world.ctx.store.read() as s:
        return {l.project_id: l.usage.rpd
                for l in accounting.pool_loads(s, q.get_pool(s, POOL), world.ctx.now())}


def reads(emu) -> int:
    with emu.state.lock:
        return sum(len(v) for v in emu.state.monitoring_reads.values())


def test_poll_reads_members_through_their_scope_and_counts_them_like_one_by_one(world, emu):
    traffic(world, "alpha-one", 3)
    traffic(world, "beta-two", 1)
    traffic(world, "delta-four", 2)
    summary = poll(world)
    assert summary.failures == {} and summary.alone == ["delta-four"]
    assert {p: r.scope for p, r in summary.projects.items()} == {
        "alpha-one": SCOPE[0], "beta-two": SCOPE[0], "gamma-three": SCOPE[0], "delta-four": None}
    assert summary.projects["alpha-one"].by_key == {world.keys["alpha-one"]: 3}
    assert rpd(world) == {"alpha-one": 3, "beta-two": 1, "gamma-three": 0, "delta-four": 2}
    emu.monitoring_reads_per_minute = 100_000  # start counting afresh
    poll(world)  # a usual poll: every window is the last few minutes
    assert reads(emu) == 2 + 2  # two for the scope's three projects, two for delta-four alone
    assert rpd(world) == {"alpha-one": 3, "beta-two": 1, "gamma-three": 0, "delta-four": 2}


def test_poll_reads_a_long_window_of_a_scope_in_slices_and_counts_it_all(tmp_path, sqlite_url, emu):
    w = world_for(tmp_path, sqlite_url, emu, extra='monitoring_lag = "3h"\n')
    try:
        poll(w)  # every project read once: the next windows start 3 h before this poll
        traffic(w, "alpha-one", 2)
        emu.advance(150 * 60)  # two and a half hours later: the window spans three one-hour slices
        traffic(w, "alpha-one", 1)
        traffic(w, "beta-two", 1)
        emu.monitoring_reads_per_minute = 100_000  # start counting afresh
        summary = poll(w, projects=list(MEMBERS))
        assert summary.failures == {}
        assert summary.projects["alpha-one"].requests == 3
        assert summary.projects["alpha-one"].minutes == 2
        assert summary.projects["beta-two"].requests == 1
        assert reads(emu) >= 2 * 3  # several slices, two reads each
    finally:
        w.ctx.close()


def test_poll_through_a_scope_is_the_same_as_without_scopes(tmp_path, sqlite_url, emu):
    plain_dir, scoped_dir = tmp_path / "plain", tmp_path / "scoped"
    plain_dir.mkdir(), scoped_dir.mkdir()
    scoped = world_for(scoped_dir, sqlite_url, emu)
    plain = world_for(plain_dir, f"sqlite:///{plain_dir / 'db.sqlite'}", emu, scopes=())
    try:
        for project_id, n in (("alpha-one", 2), ("gamma-three", 4), ("delta-four", 1)):
            for w in (scoped, plain):  # each world's own keys, same traffic
                traffic(w, project_id, n)
        emu.advance(90)
        poll(scoped), poll(plain)
        assert rpd(scoped) == rpd(plain) == {"alpha-one": 4, "beta-two": 0, "gamma-three": 8,
                                             "delta-four": 2}
    finally:
        scoped.ctx.close(), plain.ctx.close()


def test_poll_follows_every_page_of_a_scope(world, emu):
    for project_id, n in (("alpha-one", 2), ("beta-two", 3), ("gamma-three", 1)):
        traffic(world, project_id, n)
    emu.monitoring_page_size = 1  # every series on its own page
    summary = poll(world)
    assert summary.failures == {}
    assert rpd(world) == {"alpha-one": 2, "beta-two": 3, "gamma-three": 1, "delta-four": 0}
    assert reads(emu) > 4  # the scope took several pages


def test_poll_reads_each_member_over_its_own_window(world, emu):
    traffic(world, "beta-two", 2)  # beta-two has never been polled: its window is the whole day
    emu.advance(60 * 60)
    accounting.poll_monitoring(world.ctx, force=True, source_factory=source,
                               scopes_client=scopes_client(), projects=["alpha-one"])
    emu.advance(30 * 60)  # alpha-one's next window starts 35 minutes back, after beta's traffic
    traffic(world, "alpha-one", 1)
    summary = poll(world)
    assert summary.failures == {}
    assert summary.projects["beta-two"].requests == 2  # its own window, not alpha-one's
    assert rpd(world)["beta-two"] == 2 and rpd(world)["alpha-one"] == 1


def test_poll_when_a_scope_fails_reports_its_members_and_reads_them_next_time(world, emu):
    traffic(world, "alpha-one", 1)
    traffic(world, "delta-four", 1)
    emu.inject_fault("monitoring", rf"/projects/{SCOPE[0]}/timeSeries", status=503, count=1000)
    summary = poll(world)
    assert set(summary.failures) == set(MEMBERS)
    assert all(SCOPE[0] in reason for reason in summary.failures.values())
    assert set(summary.projects) == {"delta-four"}  # the project outside is unaffected
    assert rpd(world)["alpha-one"] == 0
    emu.clear_faults()
    emu.advance(120)
    summary = poll(world)
    assert summary.failures == {} and rpd(world)["alpha-one"] == 1  # nothing lost


def test_poll_when_membership_cannot_be_read_polls_those_projects_one_by_one(world, emu):
    traffic(world, "beta-two", 2)
    emu.deny_permission(SCOPE[0], "resourcemanager.projects.get")
    summary = poll(world)
    assert summary.failures == {}
    assert sorted(summary.alone) == sorted(PROJECTS)
    assert rpd(world)["beta-two"] == 2


def test_poll_of_a_member_without_a_number_in_the_config_reads_it_alone(tmp_path, sqlite_url, emu):
    numbers = {p: n for p, n in PROJECTS.items() if p != "gamma-three"}
    w = world_for(tmp_path, sqlite_url, emu, numbers=numbers)
    try:
        traffic(w, "gamma-three", 2)
        summary = poll(w)
        assert summary.failures == {} and sorted(summary.alone) == ["delta-four", "gamma-three"]
        assert summary.projects["gamma-three"].scope is None and rpd(w)["gamma-three"] == 2
    finally:
        w.ctx.close()


def test_poll_of_a_project_outside_every_scope_still_counts_it(world, emu):
    emu.remove_from_metrics_scope(SCOPE[0], "alpha-one")  # the operator took it out
    traffic(world, "alpha-one", 2)
    summary = poll(world)
    assert "alpha-one" in summary.alone and summary.projects["alpha-one"].scope is None
    assert rpd(world)["alpha-one"] == 2


def test_poll_of_the_scoping_project_itself_counts_it_through_its_scope(tmp_path, sqlite_url, emu):
    emu.create_manual_key(SCOPE[0])
    made = {p: emu.create_manual_key(p) for p in (SCOPE[0], "alpha-one")}
    clock = lambda: datetime.fromtimestamp(emu.now(), timezone.utc)  # noqa: E731
    w = make_world(tmp_path, sqlite_url, {SCOPE[0]: None, "alpha-one": None}, clock=clock,
                   given_keys={p: (k["keyString"], k["uid"]) for p, k in made.items()},
                   numbers={"alpha-one": PROJECTS["alpha-one"]},
                   extra=f'[usage]\nmetrics_scopes = ["{SCOPE[0]}"]\n')
    try:
        traffic(w, SCOPE[0], 2)
        summary = poll(w)
        assert summary.alone == [] and summary.projects[SCOPE[0]].scope == SCOPE[0]
        assert rpd(w)[SCOPE[0]] == 2
    finally:
        w.ctx.close()


def emulated_pace(emu, per_minute: int) -> ReadPace:
    """A pace on the emulator's clock, whose waits move that clock instead of sleeping."""
    return ReadPace(per_minute, clock=emu.now, sleep=emu.advance)


def test_per_project_poll_paced_to_the_quota_never_meets_a_429(tmp_path, sqlite_url, emu):
    # One worker: the pace's waits move the emulator's clock, and a second worker's wait could
    # move it between another's slot and its request (the threads' case is test_google_read_pace).
    w = world_for(tmp_path, sqlite_url, emu, scopes=(), extra="poll_workers = 1\n")
    try:
        for project_id in PROJECTS:
            traffic(w, project_id, 1)
        emu.monitoring_reads_per_minute = 3  # eight reads needed: the poll must spread over minutes
        pace = emulated_pace(emu, 3)
        started = emu.now()
        summary = poll(w, source_factory=lambda: source(pace))
        assert summary.failures == {}
        assert rpd(w) == {p: 1 for p in PROJECTS}
        assert emu.now() - started >= 120  # it waited for the quota rather than spending it twice
    finally:
        w.ctx.close()


def test_per_project_poll_without_the_pace_runs_into_the_quota(tmp_path, sqlite_url, emu):
    w = world_for(tmp_path, sqlite_url, emu, scopes=())
    try:
        emu.monitoring_reads_per_minute = 3
        summary = poll(w)
        assert summary.failures  # what the pace is for: Google refuses the fourth read of the minute
        assert any("quota" in reason.lower() or "429" in reason or "exhausted" in reason.lower()
                   for reason in summary.failures.values())
    finally:
        w.ctx.close()


def test_cli_poll_names_the_projects_read_outside_every_scope(world, emu, monkeypatch):
    from click.testing import CliRunner

    from keyward.cli.app import cli

    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KEYWARD_CONFIG", str(world.config_path))
    traffic(world, "delta-four", 1)
    result = CliRunner().invoke(cli, ["usage", "poll"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "delta-four" in result.stdout and "alpha-one" in result.stdout
    assert "1 project(s) in no listed metrics scope" in result.stderr
    assert "delta-four" in result.stderr and "alpha-one" not in result.stderr
