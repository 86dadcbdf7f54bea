"""keyward's tables, as typed SQLAlchemy models.

The schema changes only through Alembic revisions in `migrations/`; a test proves these models and the
revisions agree. Projects are identified by Google's project id (a string), keys by keyward's own key id
(the `keyId` given to Google for keys keyward creates, a local id for keys added by hand), so journal
lines and logs can name them without ever naming a secret.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from keyward.sealing import Sealer, is_sealed
from keyward.storage.types import UTCDateTime

# Key states. A key keyward creates goes pending → active → previous → retired; `failed` is a key that did
# not pass verification (deleted at Google), `invalid` one that Gemini rejected while in use.
PENDING, ACTIVE, PREVIOUS, RETIRED, FAILED, INVALID = (
    "pending", "active", "previous", "retired", "failed", "invalid",
)
LIVE_STATES = (PENDING, ACTIVE, PREVIOUS)

# Where a pool or project comes from: the config file owns what it declares, the CLI the rest.
ORIGIN_CONFIG, ORIGIN_CLI = "config", "cli"


class Base(DeclarativeBase):
    pass


class Pool(Base):
    """A named group of projects that publishes one current key (for one model)."""

    __tablename__ = "pools"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    model: Mapped[str] = mapped_column(String(128))
    origin: Mapped[str] = mapped_column(String(16), default=ORIGIN_CLI)
    current_key_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    current_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    current_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    all_exhausted: Mapped[bool] = mapped_column(Boolean, default=False)
    # The key id every sink last confirmed; publishing happens only when it differs from current_key_id.
    published_key_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    projects: Mapped[list[Project]] = relationship(back_populates="pool")


class Project(Base):
    """A Google Cloud project the operator owns; quota is counted per project and per model."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), unique=True)
    number: Mapped[str | None] = mapped_column(String(32), nullable=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id"), index=True)
    managed: Mapped[bool] = mapped_column(Boolean, default=False)
    service_account: Mapped[str | None] = mapped_column(String(320), nullable=True)
    allowed_ips: Mapped[str] = mapped_column(Text, default="")  # comma-separated, validated on input
    min_age_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_age_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    origin: Mapped[str] = mapped_column(String(16), default=ORIGIN_CLI)
    # Rotation backoff after failures: the next attempt waits until this instant.
    rotation_failures: Mapped[int] = mapped_column(Integer, default=0)
    rotation_backoff_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    pool: Mapped[Pool] = relationship(back_populates="projects")
    keys: Mapped[list[Key]] = relationship(back_populates="project", cascade="all, delete-orphan")
    limits: Mapped[list[Limit]] = relationship(back_populates="project", cascade="all, delete-orphan")


class Limit(Base):
    """A project's limits for one model, from the config or from Google's Service Usage."""

    __tablename__ = "limits"
    __table_args__ = (UniqueConstraint("project_pk", "model", name="uq_limits_project_model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_pk: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(128))
    rpm: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tpm: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    rpd: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    source: Mapped[str] = mapped_column(String(16))  # config | google | cli
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    project: Mapped[Project] = relationship(back_populates="limits")


class Key(Base):
    """One API key of a project. `secret` is the key string; it is read only to verify or publish."""

    __tablename__ = "keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(128), unique=True)
    project_pk: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    google_name: Mapped[str | None] = mapped_column(String(512), nullable=True, unique=True)
    google_uid: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    etag: Mapped[str | None] = mapped_column(String(128), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))  # standard | auth
    state: Mapped[str] = mapped_column(String(16), index=True)
    origin: Mapped[str] = mapped_column(String(16))  # keyward (created through the API) | manual
    # The key string as stored: sealed (keyward.sealing) when a master key exists, else plain text.
    # Code reads the `secret` property, which opens it on first use, and writes through
    # `store.set_secret`; `masked` lets every listing show the key without opening anything.
    sealed: Mapped[str | None] = mapped_column("secret", Text, nullable=True)
    # The id of the master key that sealed the secret (NULL: plain text or none), so status and
    # `keyward db rekey` count and find rows without parsing or opening them.
    sealed_by: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)
    masked: Mapped[str] = mapped_column(String(32))
    # A digest of the secret, so a report carrying a key string finds its key without reading (or, once
    # secrets are encrypted at rest, decrypting) every secret.
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    rotate_after: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    grace_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    invalid_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    invalid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    replaced_by: Mapped[str | None] = mapped_column(String(128), nullable=True)

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

    __tablename__ = "rotations"
    __table_args__ = (Index("ix_rotations_project_open", "project_pk", "finished_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_pk: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    step: Mapped[str] = mapped_column(String(16))
    new_key_id: Mapped[str] = mapped_column(String(128), unique=True)
    old_key_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    operation: Mapped[str | None] = mapped_column(String(512), nullable=True)
    reason: Mapped[str] = mapped_column(String(64))  # due | forced | migrate | invalid | manual
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)  # done | failed | abandoned


class UsageMinute(Base):
    """Requests and tokens of one project and model in one UTC minute, per source.

    Local reports and Cloud Monitoring observe the same traffic; they are kept apart and merged by
    taking the larger count per minute, so nothing is counted twice and late Monitoring data only
    ever fills in what no tool reported.
    """

    __tablename__ = "usage_minutes"
    __table_args__ = (Index("ix_usage_minutes_minute", "minute"),)

    project_pk: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    minute: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    source: Mapped[str] = mapped_column(String(16), primary_key=True)  # local | monitoring
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)


class UsageDay(Base):
    """Per Pacific day totals, kept up to date on every write so status never scans a day of minutes.

    Besides the per-source rows ("local", "monitoring") there is an "effective" row: the sum over the
    day's minutes of the larger of the two sources, which is what RPD is. The larger of the two day
    totals would undercount when each source saw different minutes.
    """

    __tablename__ = "usage_days"

    project_pk: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)  # the America/Los_Angeles date
    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)


class Exhaustion(Base):
    """A project+model Google said is out of quota, and until when (from a 429)."""

    __tablename__ = "exhaustion"

    project_pk: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    scope: Mapped[str] = mapped_column(String(16))  # minute | tokens | day
    quota_ids: Mapped[str] = mapped_column(Text, default="")
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Event(Base):
    """The append-only journal: rotations, publications, errors, operator actions."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(48))
    level: Mapped[str] = mapped_column(String(8), default="info")
    project_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pool: Mapped[str | None] = mapped_column(String(64), nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    message: Mapped[str] = mapped_column(Text)


class Meta(Base):
    """Small named values: the daemon heartbeat, the keyward version that last wrote the schema."""

    __tablename__ = "meta"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Lease(Base):
    """A named lease with a fencing epoch, for one rotating leader among hosts sharing PostgreSQL."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    epoch: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
