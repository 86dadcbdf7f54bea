"""The typed configuration keyward runs on: frozen dataclasses with the documented defaults.

`load_config` builds these from a TOML file (or from nothing) and fills in the defaults that
depend on other values: the database under `state_dir`, the ingest socket under `runtime_dir`,
one file sink per pool. Constructing them by hand gives the static defaults only, so tests that
want a complete configuration should call `load_config(None, env=...)` and `dataclasses.replace`.
The database URL may hold a password, so it is left out of `repr()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from keyward.config.paths import default_runtime_dir, default_state_dir

DEFAULT_MODEL = "gemini-2.5-flash"
DEFAULT_POOL = "default"
LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_SINK_TYPES = frozenset({"file", "keyring", "null"})


@dataclass(frozen=True)
class RotationConfig:
    """When keys are replaced, how long the old one lives on, and how failures back off."""

    min_age: timedelta = timedelta(days=7)
    max_age: timedelta = timedelta(days=15)
    grace: timedelta = timedelta(hours=24)
    verify: bool = True
    retry_backoff: timedelta = timedelta(hours=1)
    max_backoff: timedelta = timedelta(hours=24)
    operation_timeout: timedelta = timedelta(minutes=2)
    retry_budget: timedelta = timedelta(minutes=2)
    # At most one replacement of a key reported invalid per project within this interval.
    invalid_interval: timedelta = timedelta(minutes=10)


@dataclass(frozen=True)
class UsageConfig:
    """How usage is collected and how long the counts are kept."""

    poll_interval: timedelta = timedelta(seconds=60)
    monitoring: bool = True
    minute_retention: timedelta = timedelta(hours=48)
    day_retention: timedelta = timedelta(days=90)
    monitoring_lag: timedelta = timedelta(minutes=5)
    # Projects polled at once when polled one by one (each is two Monitoring reads).
    poll_workers: int = 32
    # Monitoring reads (pages and retries included) keyward sends per minute at most. Google
    # charges every read to the quota project, whichever project it reads, so one budget covers
    # the whole poll; the default is the usual default of that read quota.
    monitoring_reads_per_minute: int = 6000
    # Scoping projects whose metrics scopes hold the pools' projects: each is read in two reads
    # (plus pages) a poll instead of two per project. Projects in no listed scope are polled one
    # by one as before.
    metrics_scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SelectionConfig:
    """How eagerly the published key moves to a less loaded project."""

    margin: float = 0.10
    interval: timedelta = timedelta(seconds=15)


@dataclass(frozen=True)
class DaemonConfig:
    """The daemon's timers and listening endpoints (None means off)."""

    rotation_check: timedelta = timedelta(hours=1)
    jitter: timedelta = timedelta(seconds=10)
    heartbeat: timedelta = timedelta(seconds=15)
    verify_invalid: timedelta = timedelta(minutes=10)
    prune_interval: timedelta = timedelta(hours=1)
    ingest_socket: Path | None = None
    ingest_tcp: str | None = None
    metrics: str | None = None
    lock_file: Path | None = None
    # The leader lease: another daemon takes over within 2 × this after the leader dies.
    lease: timedelta = timedelta(seconds=7)


@dataclass(frozen=True)
class GoogleConfig:
    """Which Google credentials keyward uses; None means Application Default Credentials."""

    credentials: Path | None = None
    quota_project: str | None = None


@dataclass(frozen=True)
class SinkConfig:
    """One place a pool's current key is published; `options` are the type's own settings."""

    type: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PoolConfig:
    """A set of projects sharing one published key. `declared` is False for the implicit pool."""

    name: str
    model: str = DEFAULT_MODEL
    margin: float | None = None
    sinks: tuple[SinkConfig, ...] = ()
    post_publish: tuple[str, ...] | None = None
    post_publish_timeout: timedelta = timedelta(seconds=30)
    declared: bool = True
    budget: Any = None  # keyward.cost.BudgetConfig, or None: no budget


@dataclass(frozen=True)
class LimitConfig:
    """A project's quota for one model, as the operator knows it (None: unknown, ask Google)."""

    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None


@dataclass(frozen=True)
class ProjectConfig:
    """A Google Cloud project whose Gemini key keyward looks after."""

    id: str
    number: str | None = None
    pool: str = DEFAULT_POOL
    managed: bool = False
    service_account: str | None = None
    allowed_ips: tuple[str, ...] = ()
    min_age: timedelta | None = None
    max_age: timedelta | None = None
    limits: dict[str, LimitConfig] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    """Everything keyward reads from its configuration file and environment."""

    source: Path | None = None
    state_dir: Path = field(default_factory=default_state_dir)
    runtime_dir: Path = field(default_factory=default_runtime_dir)
    database_url: str = field(default="", repr=False)
    log_level: str = "info"
    # The 0600 file holding the master key that seals key strings at rest (see keyward.master_key).
    master_key_file: Path | None = None
    rotation: RotationConfig = field(default_factory=RotationConfig)
    usage: UsageConfig = field(default_factory=UsageConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    google: GoogleConfig = field(default_factory=GoogleConfig)
    pools: dict[str, PoolConfig] = field(default_factory=dict)
    projects: dict[str, ProjectConfig] = field(default_factory=dict)
    prices: dict[str, Any] = field(default_factory=dict)  # model → keyward.cost.Price
    alerts: Any = None  # keyward.alerts.AlertsConfig, or None: no event hooks

    def __post_init__(self) -> None:
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{self.state_dir}/keyward.db")

    def pool_margin(self, pool: str) -> float:
        """Return the selection margin for `pool`: its own if set, else `selection.margin`."""
        declared = self.pools.get(pool)
        if declared is not None and declared.margin is not None:
            return declared.margin
        return self.selection.margin

    def project_ages(self, project_id: str) -> tuple[timedelta, timedelta]:
        """Return (min_age, max_age) for a project declared in the file, with its overrides applied."""
        project = self.projects[project_id]
        return (project.min_age or self.rotation.min_age, project.max_age or self.rotation.max_age)
