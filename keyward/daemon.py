"""`keyward run`: the jobs of keyward.jobs on APScheduler timers, under systemd.

Start-up order matters: the lock first (one daemon per database on a host), then the database, then
the cleanup of temp files a crash left, then the sockets, then publishing every pool's key from what
the database holds, and then READY=1: `systemctl start` returns once a key is published for every
pool that can have one and `keyward status` answers, in seconds whatever Google's latency. The
first full pass (journaled rotations resumed, rotations due, limits, usage) runs after READY, in a
worker; the periodic jobs start when it ends. A pool whose projects have no key yet gets one from
that pass. Signals only set flags; the main thread acts on them, so no handler ever runs inside a
job. The APScheduler job store is in memory: schedules come from the config, and job stores must
never be shared between schedulers. The daemon keeps each pool's loads in memory
(keyward.usage.loads.LoadBook) so selection does not recompute them on every choice.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Mapping

from keyward import jobs

if TYPE_CHECKING:
    from keyward.config import Config
    from keyward.context import Context

log = logging.getLogger(__name__)

# How long SIGTERM waits for a running job before leaving its work journaled for the next start.
STOP_GRACE_SECONDS = 7.0


class Daemon:
    """One daemon process: a configuration, a Context, a scheduler, signal flags."""

    def __init__(self, config_path: str | None, *, env: Mapping[str, str] | None = None):
        self.config_path = config_path
        self.env = env
        # Set by signal handlers, which run on the main thread between bytecodes: plain flags and
        # a byte down a pipe, never a lock (threading.Event.set takes one, which the main thread
        # may hold at that moment: a deadlock only SIGKILL ends).
        self._stop_requested = False
        self._reload_requested = False
        self._wake_r = self._wake_w = -1
        self._joined = False  # leadership joined: only then may the shared heartbeat say "stopped"
        self._previous_handlers: dict[int, object] = {}
        self._scheduled = False  # the first pass has scheduled the periodic jobs (under _busy)
        self._due_when_scheduled: dict[str, None] = {}  # jobs to run once it has, in order (_run_soon)
        self.ctx: Context | None = None
        self.scheduler = None
        self.started_at: datetime | None = None
        self.ingest = None
        self.metrics = None
        self.status_server = None
        self._last_beat = 0.0
        self.leadership = None
        self._busy = threading.Condition()
        self._running_jobs = 0

    # Lifecycle --------------------------------------------------------------------------------

    def run(self, *, once: bool = False) -> int:
        """Run until SIGTERM/SIGINT (or one pass with `once`); return the exit code."""
        from keyward.config import find_config_path, load_config
        from keyward.context import Context
        from keyward.lock import DaemonLock
        from keyward.notify import Notifier

        if not once:
            self._install_signals()  # first of all: a SIGHUP during start-up must not kill us
        config = load_config(find_config_path(self.config_path, env=self.env), env=self.env)
        from keyward.atomicfile import ensure_private_dir

        ensure_private_dir(config.state_dir, 0o700)
        lock_path = config.daemon.lock_file or config.state_dir / "keyward.lock"
        ensure_private_dir(lock_path.parent, 0o700)
        lock = DaemonLock(lock_path).acquire()
        notifier = Notifier.from_env()
        try:
            self.ctx = Context(config)
            self._check_secrets_at_rest()
            if not once:
                from keyward import memory
                from keyward.usage.loads import LoadBook

                memory.limit_arenas()  # before the scheduler and servers start their threads

                self.ctx.loads = LoadBook()
            self.started_at = self.ctx.now()
            # A database keyward cannot use (newer schema, corrupt file, server gone) fails the
            # start with exit 1, so systemd's Restart= acts, instead of READY and endless failures.
            self.ctx.store
            self._join_leadership(once)
            if once:
                ok = self._startup()
                ok = self.run_pass() and ok
                return 0 if ok else 1
            self._startup(local_only=True)
            self._start_servers()
            jobs.run_job(jobs.JobSpec("publish", 0, jobs.publish), self.ctx)
            self._beat()
            self._start_scheduler()
            self._start_first_pass()
            notifier.ready(self._summary())
            log.info("keyward daemon ready (%s)", self._summary())
            if self.status_server is not None:
                threading.Thread(target=self.status_server.warm, name="keyward-status-warm", daemon=True).start()
            self._main_loop(notifier)
            notifier.stopping()
            log.info("keyward daemon stopping")
            return 0
        finally:
            self._shutdown()
            lock.release()
            self._remove_signals()

    def _join_leadership(self, once: bool = False) -> None:
        """Register this instance and take the leader lease if free (keyward.leadership): only
        the leader rotates and polls Google; every daemon serves reports, publishes and status.
        A single pass waits (up to 2 × the lease) for a lease a killed daemon left behind."""
        from keyward import leadership

        self.leadership = leadership.Leadership(lambda: self.ctx)
        self.leadership.on_lead = self._leader_jobs_now
        self.leadership.start()
        leadership.attach(self.ctx.store, self.leadership)
        self._joined = True
        if once and not self.leadership.wait_to_lead(2 * self.leadership.ttl.total_seconds()):
            log.info("another daemon leads; this pass only publishes")

    def _leader_jobs_now(self) -> None:
        """On becoming leader, run the leader's jobs (rotation first) at once, and write the shared
        heartbeat, so status stops naming the daemon that led before."""
        scheduler = self.scheduler
        if scheduler is None or not scheduler.running:
            return  # the first pass, still to come, runs them
        if scheduler.get_job("heartbeat") is not None:  # scheduled from the start
            scheduler.modify_job("heartbeat", next_run_time=datetime.now().astimezone())
        # A first pass still running skipped these as a follower: they run once it schedules them.
        self._run_soon([spec.name for spec in jobs.job_table(self.ctx.config)
                        if spec.name in jobs.LEADER_ONLY])  # rotation first

    def _run_soon(self, names: list[str]) -> None:
        """Run these periodic jobs at once, or, while the first pass has not scheduled them yet, as
        soon as it has. The check and the scheduling share `_busy`, so no request falls between."""
        with self._busy:
            if not self._scheduled:
                self._due_when_scheduled.update(dict.fromkeys(names))
                return
            now = datetime.now().astimezone()
            for name in names:
                if self.scheduler.get_job(name) is not None:
                    self.scheduler.modify_job(name, next_run_time=now)

    def _check_secrets_at_rest(self) -> None:
        """Refuse to start when a sealed key string cannot be opened (MasterKeyError names where we looked)."""
        from keyward import at_rest

        at_rest.check(self.ctx)

    def _startup(self, *, local_only: bool = False) -> bool:
        """Clean what a crash may have left behind: temp files of sinks, journaled rotations.

        With `local_only`, only the temp files: resuming rotations calls Google, which the first
        pass does after READY (its rotation job resumes them first).
        """
        from keyward.publishing import service as publishing
        from keyward.rotation import service as rotation

        steps = [("cleanup", publishing.cleanup)] + ([] if local_only else [("resume", rotation.resume_open)])
        ok = True
        for name, step in steps:
            ok = jobs.run_job(jobs.JobSpec(name, 0, step), self.ctx) and ok
        return ok

    def run_pass(self) -> bool:
        """Run every job once, in order; return whether all succeeded."""
        ok = True
        for spec in jobs.job_table(self.ctx.config):
            if self._stopping():
                break
            ok = jobs.run_job(spec, self.ctx) and ok
        self._beat()
        return ok

    def _start_first_pass(self) -> threading.Thread:
        """Run the first full pass in a worker, then schedule the periodic jobs.

        The main loop meanwhile answers signals and pings the watchdog; SIGTERM during the pass
        stops the daemon like during any job (the pass stops between jobs).
        """

        def work() -> None:
            with self._busy:
                self._running_jobs += 1
            try:
                self.run_pass()
                self._schedule_after_first_pass()
                log.info("first pass done")
            finally:
                with self._busy:
                    self._running_jobs -= 1
                    self._busy.notify_all()

        thread = threading.Thread(target=work, name="keyward-first-pass", daemon=True)
        thread.start()
        return thread

    def _schedule_after_first_pass(self) -> None:
        """Schedule the periodic jobs (with the configuration of now, reloaded or not), then run at
        once those asked for meanwhile (_run_soon)."""
        with self._busy:
            if self._stopping() or self.scheduler is None:
                return
            self._schedule(self.ctx.config)
            self._scheduled = True
            due, self._due_when_scheduled = list(self._due_when_scheduled), {}
            self._run_soon(due)

    def _beat(self) -> None:
        try:
            jobs.heartbeat(self.ctx, self.started_at)
            self._last_beat = time.monotonic()
            from keyward import memory

            memory.trim()  # an idle daemon's RSS stays flat (keyward.memory)
        except Exception as exc:  # the heartbeat must never take the daemon down
            log.error("heartbeat failed: %s", exc)

    def _summary(self) -> str:
        from keyward.storage import store as q

        try:
            with self.ctx.store.read() as s:
                pools = q.list_pools(s)
                published = sum(1 for p in pools if p.current_key_id)
                exhausted = sum(1 for p in pools if p.all_exhausted)
        except Exception:
            return "running"
        text = f"{published}/{len(pools)} pool(s) published"
        return text + (f", {exhausted} all exhausted" if exhausted else "")

    # Scheduler --------------------------------------------------------------------------------

    def _start_scheduler(self) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        self.scheduler = BackgroundScheduler(
            # The heartbeat has a thread of its own: four jobs stuck on a slow Google must not
            # starve it, or the watchdog (fed only while it beats) has systemd kill a working daemon.
            executors={"default": ThreadPoolExecutor(4), "heartbeat": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone="UTC",
        )
        self._schedule_heartbeat(self.ctx.config)  # the jobs are added when the first pass ends
        self.scheduler.start()

    def _schedule_heartbeat(self, config: "Config") -> None:
        heartbeat = config.daemon.heartbeat.total_seconds()
        self.scheduler.add_job(self._beat, "interval", id="heartbeat", replace_existing=True,
                               executor="heartbeat", seconds=heartbeat,
                               misfire_grace_time=max(1, int(heartbeat)))

    def _schedule(self, config: "Config") -> None:
        """(Re)schedule every job. A job whose interval is unchanged keeps its next run: a reload
        must not push rotation (hourly) a whole interval further away each time it happens."""
        now = datetime.now().astimezone()
        for spec in jobs.job_table(config):
            existing = self.scheduler.get_job(spec.name)
            interval = getattr(getattr(existing, "trigger", None), "interval", None)
            keep = (existing is not None and existing.next_run_time is not None
                    and interval is not None and interval.total_seconds() == spec.seconds)
            self.scheduler.add_job(
                self._run_scheduled, "interval", args=[spec.name], id=spec.name, replace_existing=True,
                seconds=spec.seconds, jitter=spec.jitter or None,
                next_run_time=existing.next_run_time if keep else now + timedelta(seconds=spec.seconds),
                misfire_grace_time=max(1, int(spec.seconds)),
            )
        self._schedule_heartbeat(config)

    def _run_scheduled(self, name: str) -> None:
        if self._stopping():
            return
        with self._busy:
            self._running_jobs += 1
        try:
            ctx = self.ctx  # read once: a reload may swap it while the job runs
            for spec in jobs.job_table(ctx.config):
                if spec.name == name:
                    jobs.run_job(spec, ctx)
        finally:
            with self._busy:
                self._running_jobs -= 1
                self._busy.notify_all()

    def _wait_for_jobs(self, seconds: float) -> bool:
        """Wait up to `seconds` for running jobs to return; return whether they all did."""
        with self._busy:
            return self._busy.wait_for(lambda: self._running_jobs == 0, timeout=seconds)

    # Signals and the main loop ------------------------------------------------------------------

    def _stopping(self) -> bool:
        return self._stop_requested

    def _install_signals(self) -> None:
        """SIGTERM and SIGINT stop, SIGHUP reloads: each sets its own flag and wakes the main loop,
        so a SIGTERM that arrives while a reload is pending is never lost (a stop wins)."""
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

        def stop(*_):
            self._stop_requested = True
            self._wake()

        def reload(*_):
            self._reload_requested = True
            self._wake()

        self._previous_handlers = {signum: signal.signal(signum, handler) for signum, handler in
                                   ((signal.SIGTERM, stop), (signal.SIGINT, stop), (signal.SIGHUP, reload))}

    def _remove_signals(self) -> None:
        """Put back the handlers found (a daemon run inside another program), then close the pipe."""
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except OSError:  # the pipe is full, so the main loop wakes anyway
            pass

    def _sleep(self, seconds: float) -> None:
        """Wait up to `seconds` for a signal; then empty the pipe (a later signal writes again)."""
        select.select([self._wake_r], [], [], seconds)
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _main_loop(self, notifier) -> None:
        watchdog = notifier.watchdog_interval()
        heartbeat = self.ctx.config.daemon.heartbeat.total_seconds()
        tick = min(x for x in (watchdog, heartbeat, 5.0) if x)
        while True:
            self._sleep(tick)
            if self._stop_requested:
                return
            if self._reload_requested:
                self._reload_requested = False
                notifier.reloading()
                self._reload()
                notifier.ready(self._summary())
                continue
            # Ping the watchdog only while the scheduler still runs jobs: a wedged daemon gets restarted.
            if watchdog and time.monotonic() - self._last_beat < 3 * heartbeat + watchdog:
                notifier.watchdog()
            notifier.status(self._summary())

    def _reload(self) -> None:
        """Load the configuration again; keep the old one when the new one is invalid."""
        from keyward.config import find_config_path, load_config

        try:
            config = load_config(find_config_path(self.config_path, env=self.env), env=self.env)
        except Exception as exc:  # any failure at all keeps the running configuration
            from keyward.failures import named

            log.error("reload refused, keeping the running configuration: %s", named(exc))
            return
        try:
            new_ctx = self.ctx.with_config(config)
            if new_ctx.loads is None:  # a new database: keep loads for it from scratch
                from keyward.usage.loads import LoadBook

                new_ctx.loads = LoadBook()
            new_ctx.store  # syncs the new config's pools and projects (opens a new database if moved)
        except Exception as exc:
            from keyward.failures import named

            log.error("reload refused, keeping the running configuration: %s", named(exc))
            return
        old, self.ctx = self.ctx, new_ctx
        with self._busy:
            if self._scheduled:
                self._schedule(config)
            elif self.scheduler is not None:
                # The first pass still runs and schedules the jobs with this configuration when it
                # ends; scheduling them now would run them beside it.
                self._schedule_heartbeat(config)
        # A project the new file adds gets its first key now, not after `rotation_check`.
        self._run_soon(["rotation"])
        if self.ingest is not None:
            self.ingest.config_changed()
        log.info("configuration reloaded from %s", config.source or "built-in defaults")
        if old.store is not new_ctx.store:
            # The database moved: jobs still running on the old one finish there.
            if self.leadership is not None:  # lead (or follow) in the new database, fenced there
                from keyward import leadership

                leadership.attach(new_ctx.store, self.leadership)
                self.leadership.beat()
            old.retire()  # a job still on it ends at its next step instead of reopening it
        jobs.run_job(jobs.JobSpec("publish", 0, jobs.publish), self.ctx)

    # Servers ------------------------------------------------------------------------------------

    def _start_servers(self) -> None:
        from keyward.status_socket import StatusServer, socket_path

        d = self.ctx.config.daemon
        try:
            self.status_server = StatusServer(lambda: self.ctx, socket_path(self.ctx.config.runtime_dir)).start()
        except OSError as exc:
            log.error("status socket not started (keyward status will read the database): %s", exc)
        if d.ingest_socket or d.ingest_tcp:
            from keyward.usage.ingest import IngestServer

            try:
                self.ingest = IngestServer(lambda: self.ctx, d.ingest_socket, tcp=d.ingest_tcp)
                self.ingest.start()
            except Exception as exc:
                log.error("ingest endpoint not started: %s", exc)
                self.ingest = None
        if d.metrics:
            try:
                from keyward.metrics import start_metrics_server

                self.metrics = start_metrics_server(lambda: self.ctx, d.metrics)
            except Exception as exc:
                log.error("metrics endpoint not started: %s", exc)

    def _shutdown(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        if self._running_jobs or self._effects_busy():
            if not self._wait_idle(STOP_GRACE_SECONDS):
                # Exiting now is safe: every step of a rotation is journaled before it is taken.
                log.warning("a job is still running; its work is journaled and resumes at the next start")
                if self.leadership is not None:
                    self.leadership.stop()  # the running job's next write is fenced off
                self._close_servers()
                logging.shutdown()
                os._exit(0)
        self._close_servers()
        if self.ctx is not None and self._joined:
            # while still leading: a follower stopping must not mark the shared row stopped, nor
            # a daemon refused at start (another host on the SQLite file, a master key missing)
            try:
                jobs.heartbeat(self.ctx, self.started_at, stopping=True)
            except Exception as exc:
                log.debug("final heartbeat failed: %s", exc)
        if self.leadership is not None:
            self.leadership.stop()  # hand the lease over now rather than at its expiry
        if self.ctx is not None:
            self.ctx.close()

    def _effects_busy(self) -> bool:
        return self.ingest is not None and self.ingest.effects_busy

    def _wait_idle(self, seconds: float) -> bool:
        """Wait up to `seconds` for scheduled jobs and a report's effects (a rotation it started)
        to return; return whether they all did. SIGTERM to exit stays within 10 s this way."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._wait_for_jobs(min(0.1, max(0.0, deadline - time.monotonic()))) and not self._effects_busy():
                return True
        return False

    def _close_servers(self) -> None:
        for server in (self.ingest, self.metrics, self.status_server):
            if server is not None:
                try:
                    server.stop(**({"timeout": 1.0} if server is self.ingest else {}))
                except Exception as exc:
                    log.debug("stopping a server failed: %s", exc)
