"""keyward's tables as typed SQLAlchemy models.

The columns are defined once, in Core (`keyward.storage.tables`); each model is mapped onto its table
and names its attributes with `Mapped[...]` annotations for type checkers. The schema changes only
through Alembic revisions in `migrations/`; a test proves the tables and the revisions agree.
Projects are identified by Google's project id (a string), keys by keyward's own key id (the `keyId`
given to Google for keys keyward creates, a local id for keys added by hand), so journal lines and
logs can name them without ever naming a secret.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase, Mapped, relationship

from keyward.sealing import Sealer, is_sealed
from keyward.storage import tables
from keyward.storage.tables import (  # noqa: F401  (re-exported: the states and origins of rows)
    ACTIVE,
    FAILED,
    INVALID,
    LIVE_STATES,
    ORIGIN_CLI,
    ORIGIN_CONFIG,
    PENDING,
    PREVIOUS,
    RETIRED,
)


class Base(DeclarativeBase):
    metadata = tables.metadata


class Pool(Base):
    """A named group of projects that publishes one current key (for one model)."""

    __table__ = tables.pools

    id: Mapped[int]
    name: Mapped[str]
    model: Mapped[str]
    origin: Mapped[str]
    current_key_id: Mapped[str | None]
    current_reason: Mapped[str | None]
    current_since: Mapped[datetime | None]
    all_exhausted: Mapped[bool]
    published_key_id: Mapped[str | None]
    published_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    projects: Mapped[list[Project]] = relationship(back_populates="pool")


class Project(Base):
    """A Google Cloud project the operator owns; quota is counted per project and per model."""

    __table__ = tables.projects

    id: Mapped[int]
    project_id: Mapped[str]
    number: Mapped[str | None]
    pool_id: Mapped[int]
    managed: Mapped[bool]
    service_account: Mapped[str | None]
    allowed_ips: Mapped[str]
    min_age_s: Mapped[int | None]
    max_age_s: Mapped[int | None]
    origin: Mapped[str]
    rotation_failures: Mapped[int]
    rotation_backoff_until: Mapped[datetime | None]
    created_at: Mapped[datetime]

    pool: Mapped[Pool] = relationship(back_populates="projects")
    keys: Mapped[list[Key]] = relationship(back_populates="project", cascade="all, delete-orphan")
    limits: Mapped[list[Limit]] = relationship(back_populates="project", cascade="all, delete-orphan")


class Limit(Base):
    """A project's limits for one model, from the config or from Google's Service Usage."""

    __table__ = tables.limits

    id: Mapped[int]
    project_pk: Mapped[int]
    model: Mapped[str]
    rpm: Mapped[int | None]
    tpm: Mapped[int | None]
    rpd: Mapped[int | None]
    source: Mapped[str]
    updated_at: Mapped[datetime]

    project: Mapped[Project] = relationship(back_populates="limits")


class Key(Base):
    """One API key of a project. `secret` is the key string; it is read only to verify or publish."""

    __table__ = tables.keys

    id: Mapped[int]
    key_id: Mapped[str]
    project_pk: Mapped[int]
    google_name: Mapped[str | None]
    google_uid: Mapped[str | None]
    etag: Mapped[str | None]
    kind: Mapped[str]
    state: Mapped[str]
    origin: Mapped[str]
    # The stored value of the `secret` column: sealed when a master key exists, else plain text.
    # Code reads the `secret` property, which opens it on first use, and writes through
    # `store.set_secret`; `masked` lets every listing show the key without opening anything.
    sealed: Mapped[str | None] = tables.keys.c.secret
    sealed_by: Mapped[str | None]
    masked: Mapped[str]
    fingerprint: Mapped[str]
    created_at: Mapped[datetime]
    promoted_at: Mapped[datetime | None]
    retired_at: Mapped[datetime | None]
    rotate_after: Mapped[datetime | None]
    grace_until: Mapped[datetime | None]
    invalid_reason: Mapped[str | None]
    invalid_at: Mapped[datetime | None]
    replaced_by: Mapped[str | None]

    project: Mapped[Project] = relationship(back_populates="keys")

    @property
    def has_secret(self) -> bool:
        return self.sealed is not None

    @property
    def secret(self) -> str | None:
        """The key string, opened with the master keys of the session that loaded this row.

        Raise MasterKeyError when no master key found opens it, SecretTampered when it was altered.
        """
        value = self.sealed
        if value is None or not is_sealed(value):
            return value
        opened = getattr(self, "_kw_opened", None)
        if opened is not None and opened[0] == value:
            return opened[1]
        sealer = getattr(self, "_kw_sealer", None) or Sealer()
        plain = sealer.open(value, secret_aad(self.key_id, self.project_pk), describe_key(self))
        self._kw_opened = (value, plain)
        return plain


def secret_aad(key_id: str, project_pk: int) -> bytes:
    """The associated data sealing a key string to its row: a value moved to another row won't open."""
    return f"keys.secret\0{key_id}\0{project_pk}".encode()


def describe_key(key: Key) -> str:
    return f"key {key.key_id}"


@event.listens_for(Key, "load")
def _remember_sealer(key: Key, context) -> None:
    # Rows are often read after their session closed (expire_on_commit=False): keep the sealer.
    key._kw_sealer = context.session.info.get("sealer")


class Rotation(Base):
    """The rotation journal: one row per attempt, written before each step so a crash can resume it.

    The row exists before Google is asked to create anything, carrying the keyId keyward will use, so
    a key created just before a crash is found again by that id and never orphaned.
    """

    __table__ = tables.rotations

    id: Mapped[int]
    project_pk: Mapped[int]
    step: Mapped[str]
    new_key_id: Mapped[str]
    old_key_id: Mapped[str | None]
    operation: Mapped[str | None]
    reason: Mapped[str]
    error: Mapped[str | None]
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str | None]


class UsageMinute(Base):
    """Requests and tokens of one project and model in one UTC minute, per source.

    Local reports and Cloud Monitoring observe the same traffic; they are kept apart and merged by
    taking the larger count per minute, so nothing is counted twice and late Monitoring data only
    ever fills in what no tool reported.
    """

    __table__ = tables.usage_minutes

    project_pk: Mapped[int]
    model: Mapped[str]
    minute: Mapped[datetime]
    source: Mapped[str]
    requests: Mapped[int]
    input_tokens: Mapped[int]
    output_tokens: Mapped[int]


class UsageDay(Base):
    """Per Pacific day totals, kept up to date on every write so status never scans a day of minutes.

    Besides the per-source rows ("local", "monitoring") there is an "effective" row: the sum over the
    day's minutes of the larger of the two sources, which is what RPD is. The larger of the two day
    totals would undercount when each source saw different minutes.
    """

    __table__ = tables.usage_days

    project_pk: Mapped[int]
    model: Mapped[str]
    day: Mapped[date]
    source: Mapped[str]
    requests: Mapped[int]
    input_tokens: Mapped[int]
    output_tokens: Mapped[int]


class UsageSummary(Base):
    """One project and model's two latest minutes and its Pacific day, kept up to date on every write.

    A process without the daemon's kept loads (`keyward status` with no daemon) reads one row per
    project instead of the minute buckets. The minutes hold the effective count (the larger of the
    local and the Monitoring count), as the buckets merge them; minutes that fall out of the RPM
    window are simply ignored by readers, so nothing needs to clear them.
    """

    __table__ = tables.usage_summaries

    project_pk: Mapped[int]
    model: Mapped[str]
    minute: Mapped[datetime | None]
    requests: Mapped[int]
    tokens: Mapped[int]
    prev_minute: Mapped[datetime | None]
    prev_requests: Mapped[int]
    prev_tokens: Mapped[int]
    day: Mapped[date]
    day_requests: Mapped[int]


class Exhaustion(Base):
    """A project+model Google said is out of quota, and until when (from a 429)."""

    __table__ = tables.exhaustion

    project_pk: Mapped[int]
    model: Mapped[str]
    until: Mapped[datetime]
    scope: Mapped[str]
    quota_ids: Mapped[str]
    recorded_at: Mapped[datetime]


class Event(Base):
    """The append-only journal: rotations, publications, errors, operator actions."""

    __table__ = tables.events

    id: Mapped[int]
    at: Mapped[datetime]
    kind: Mapped[str]
    level: Mapped[str]
    project_id: Mapped[str | None]
    pool: Mapped[str | None]
    key_id: Mapped[str | None]
    message: Mapped[str]


class Meta(Base):
    """Small named values: the daemon heartbeat, the keyward version that last wrote the schema."""

    __table__ = tables.meta

    name: Mapped[str]
    value: Mapped[str]
    updated_at: Mapped[datetime]


class Lease(Base):
    """A named lease with a fencing epoch, for one rotating leader among hosts sharing PostgreSQL."""

    __table__ = tables.leases

    name: Mapped[str]
    holder: Mapped[str]
    epoch: Mapped[int]
    expires_at: Mapped[datetime]
