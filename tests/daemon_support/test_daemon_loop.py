"""The daemon's main loop, in process: its signal handlers (they run on the main thread between any
two bytecodes, so they must not take a lock the interrupted code may hold, as threading.Event.set
does: only flags and a byte down a pipe) and what it does on becoming leader."""

from __future__ import annotations

import os
import signal
import sys
import time

from keyward.daemon import Daemon


def _lock_calls_in(handler, signum) -> list[str]:
    seen: list[str] = []

    def profile(frame, event, arg):
        if event == "c_call":
            name = getattr(arg, "__qualname__", "") or repr(arg)
            if "acquire" in name or name.endswith("__enter__"):
                seen.append(name)

    sys.setprofile(profile)
    try:
        handler(signum, None)
    finally:
        sys.setprofile(None)
    return seen


def test_handlers_take_no_lock_and_record_what_was_asked():
    before = signal.getsignal(signal.SIGTERM)
    daemon = Daemon(None)
    daemon._install_signals()
    try:
        for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            assert _lock_calls_in(signal.getsignal(signum), signum) == [], signal.Signals(signum).name
        assert daemon._reload_requested and daemon._stop_requested
    finally:
        daemon._remove_signals()
    assert signal.getsignal(signal.SIGTERM) is before and daemon._wake_r == -1  # put back as found


def test_sleep_returns_at_once_after_a_signal_and_waits_again_after():
    daemon = Daemon(None)
    daemon._install_signals()
    try:
        os.kill(os.getpid(), signal.SIGHUP)  # the handler runs before kill returns to us
        assert daemon._reload_requested
        started = time.monotonic()
        daemon._sleep(30)
        assert time.monotonic() - started < 5  # woken by the byte, not by the timeout
        started = time.monotonic()
        daemon._sleep(0.2)  # the pipe was emptied: now it waits its full time
        assert time.monotonic() - started >= 0.15
    finally:
        daemon._remove_signals()


def test_leading_before_the_first_pass_scheduled_the_jobs_runs_them_once_it_has(tmp_path):
    """The lease can come while the first pass still runs (it skipped the leader's jobs as a
    follower, and they are not scheduled yet): they must then run at once, not an interval later."""
    from datetime import datetime, timedelta

    from apscheduler.schedulers.background import BackgroundScheduler

    from keyward import jobs
    from keyward.config import load_config
    from keyward.context import Context

    env = {"KEYWARD_STATE_DIR": str(tmp_path / "state"), "KEYWARD_RUNTIME_DIR": str(tmp_path / "run"),
           "HOME": str(tmp_path)}
    daemon = Daemon(None, env=env)
    daemon.ctx = Context(load_config(None, env=env), env=env)
    daemon.scheduler = BackgroundScheduler(timezone="UTC")
    daemon._schedule_heartbeat(daemon.ctx.config)
    daemon.scheduler.start(paused=True)  # nothing runs: only the plan is looked at
    try:
        daemon._leader_jobs_now()  # no leader job scheduled yet: nothing to move, but remembered
        daemon._schedule_after_first_pass()  # what the first pass does when it ends
        soon = datetime.now().astimezone() + timedelta(seconds=5)
        leader_jobs = [spec.name for spec in jobs.job_table(daemon.ctx.config) if spec.name in jobs.LEADER_ONLY]
        assert leader_jobs
        for name in leader_jobs:
            assert daemon.scheduler.get_job(name).next_run_time <= soon, name
    finally:
        daemon.scheduler.shutdown(wait=False)
        daemon.ctx.close()


def test_heartbeat_goes_on_while_every_job_thread_is_stuck(tmp_path):
    """Jobs stuck on a slow Google fill the job threads; the heartbeat, which feeds the watchdog,
    must still beat, or systemd kills a daemon that is only waiting."""
    import threading

    from keyward.config import load_config
    from keyward.context import Context
    from support.daemon_harness import wait_for

    (tmp_path / "keyward.toml").write_text('[daemon]\nheartbeat = "1s"\n')
    env = {"KEYWARD_STATE_DIR": str(tmp_path / "state"), "KEYWARD_RUNTIME_DIR": str(tmp_path / "run"),
           "HOME": str(tmp_path)}
    daemon = Daemon(None, env=env)
    daemon.ctx = Context(load_config(tmp_path / "keyward.toml", env=env), env=env)
    release = threading.Event()
    stuck = threading.Semaphore(0)

    def hang():
        stuck.release()
        release.wait(60)

    daemon._start_scheduler()
    try:
        for n in range(8):  # more than there are job threads
            daemon.scheduler.add_job(hang, id=f"hang-{n}")
        for _ in range(4):
            assert stuck.acquire(timeout=10), "the job threads did not fill"
        before = daemon._last_beat
        wait_for(lambda: daemon._last_beat != before, 10, "a heartbeat with every job thread stuck")
    finally:
        release.set()
        daemon.scheduler.shutdown(wait=False)
        daemon.ctx.close()
