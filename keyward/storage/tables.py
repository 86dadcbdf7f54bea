"""keyward's tables in SQLAlchemy Core: the one definition of the schema's columns.

The typed ORM models (`keyward.storage.models`) are mapped onto these tables, so the two cannot
disagree, and a test proves both agree with the Alembic revisions in `migrations/`. Commands that
only read (`pool list`, `key list`, `status` without a daemon) query these tables directly and never
import the ORM, which costs more than the rest of such a command.

Columns are NOT NULL unless they say `nullable=True`, as the models' `Mapped[...]` annotations say.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from keyward.storage.types import UTCDateTime

# Key states. A key keyward creates goes pending → active → previous → retired; `failed` is a key that did
# not pass verification (deleted at Google), `invalid` one that Gemini rejected while in use.
PENDING, ACTIVE, PREVIOUS, RETIRED, FAILED, INVALID = (
    "pending", "active", "previous", "retired", "failed", "invalid",
)
LIVE_STATES = (PENDING, ACTIVE, PREVIOUS)

# Where a pool or project comes from: the config file owns what it declares, the CLI the rest.
ORIGIN_CONFIG, ORIGIN_CLI = "config", "cli"

# The sources of usage rows; "effective" day rows hold the per-minute maxima of the other two.
LOCAL, MONITORING, EFFECTIVE = "local", "monitoring", "effective"
# The model of a limit row that applies to every model of the project.
ALL_MODELS = "*"

metadata = MetaData()


def _required(name: str, type_, *args, **kwargs) -> Column:
    return Column(name, type_, *args, nullable=False, **kwargs)


def _optional(name: str, type_, *args, **kwargs) -> Column:
    return Column(name, type_, *args, nullable=True, **kwargs)


def _project_fk(**kwargs) -> Column:
    return _required("project_pk", Integer, ForeignKey("projects.id", ondelete="CASCADE"), **kwargs)


pools = Table(
    "pools", metadata,
    Column("id", Integer, primary_key=True),
    _required("name", String(64), unique=True),
    _required("model", String(128)),
    _required("origin", String(16), default=ORIGIN_CLI),
    _optional("current_key_id", String(128)),
    _optional("current_reason", Text),
    _optional("current_since", UTCDateTime),
    _required("all_exhausted", Boolean, default=False),
    # The key id every sink last confirmed; publishing happens only when it differs from current_key_id.
    _optional("published_key_id", String(128)),
    _optional("published_at", UTCDateTime),
    _required("created_at", UTCDateTime),
)

projects = Table(
    "projects", metadata,
    Column("id", Integer, primary_key=True),
    _required("project_id", String(64), unique=True),
    _optional("number", String(32)),
    _required("pool_id", Integer, ForeignKey("pools.id"), index=True),
    _required("managed", Boolean, default=False),
    _optional("service_account", String(320)),
    _required("allowed_ips", Text, default=""),  # comma-separated, validated on input
    _optional("min_age_s", Integer),
    _optional("max_age_s", Integer),
    _required("origin", String(16), default=ORIGIN_CLI),
    # Rotation backoff after failures: the next attempt waits until this instant.
    _required("rotation_failures", Integer, default=0),
    _optional("rotation_backoff_until", UTCDateTime),
    _required("created_at", UTCDateTime),
)

limits = Table(
    "limits", metadata,
    Column("id", Integer, primary_key=True),
    _project_fk(),
    _required("model", String(128)),
    _optional("rpm", BigInteger),
    _optional("tpm", BigInteger),
    _optional("rpd", BigInteger),
    _required("source", String(16)),  # config | google | cli
    _required("updated_at", UTCDateTime),
    UniqueConstraint("project_pk", "model", name="uq_limits_project_model"),
)

keys = Table(
    "keys", metadata,
    Column("id", Integer, primary_key=True),
    _required("key_id", String(128), unique=True),
    _project_fk(index=True),
    _optional("google_name", String(512), unique=True),
    _optional("google_uid", String(64), index=True),
    _optional("etag", String(128)),
    _required("kind", String(16)),  # standard | auth
    _required("state", String(16), index=True),
    _required("origin", String(16)),  # keyward (created through the API) | manual
    # The key string as stored: sealed (keyward.sealing) when a master key exists, else plain text.
    # Read only to verify or publish; listings show `masked`, and `sealed_by` names the master key.
    _optional("secret", Text),
    _optional("sealed_by", String(16), index=True),
    _required("masked", String(32)),
    # A digest of the secret, so a report carrying a key string finds its key without opening secrets.
    _required("fingerprint", String(64), index=True),
    _required("created_at", UTCDateTime),
    _optional("promoted_at", UTCDateTime),
    _optional("retired_at", UTCDateTime),
    _optional("rotate_after", UTCDateTime),
    _optional("grace_until", UTCDateTime),
    _optional("invalid_reason", Text),
    _optional("invalid_at", UTCDateTime),
    _optional("replaced_by", String(128)),
)

rotations = Table(
    "rotations", metadata,
    Column("id", Integer, primary_key=True),
    _project_fk(),
    _required("step", String(16)),
    _required("new_key_id", String(128), unique=True),
    _optional("old_key_id", String(128)),
    _optional("operation", String(512)),
    _required("reason", String(64)),  # due | forced | migrate | invalid | manual
    _optional("error", Text),
    _required("started_at", UTCDateTime),
    _required("updated_at", UTCDateTime),
    _optional("finished_at", UTCDateTime),
    _optional("outcome", String(16)),  # done | failed | abandoned
    Index("ix_rotations_project_open", "project_pk", "finished_at"),
)

usage_minutes = Table(
    "usage_minutes", metadata,
    _project_fk(primary_key=True),
    Column("model", String(128), primary_key=True),
    Column("minute", UTCDateTime, primary_key=True),
    Column("source", String(16), primary_key=True),  # local | monitoring
    _required("requests", BigInteger, default=0),
    _required("input_tokens", BigInteger, default=0),
    _required("output_tokens", BigInteger, default=0),
    Index("ix_usage_minutes_minute", "minute"),
)

usage_days = Table(
    "usage_days", metadata,
    _project_fk(primary_key=True),
    Column("model", String(128), primary_key=True),
    Column("day", Date, primary_key=True),  # the America/Los_Angeles date
    Column("source", String(16), primary_key=True),  # local | monitoring | effective
    _required("requests", BigInteger, default=0),
    _required("input_tokens", BigInteger, default=0),
    _required("output_tokens", BigInteger, default=0),
)

usage_summaries = Table(
    "usage_summaries", metadata,
    _project_fk(primary_key=True),
    Column("model", String(128), primary_key=True),
    _optional("minute", UTCDateTime),  # the latest minute with usage
    _required("requests", BigInteger, default=0),
    _required("tokens", BigInteger, default=0),  # input tokens, as TPM counts them
    _optional("prev_minute", UTCDateTime),
    _required("prev_requests", BigInteger, default=0),
    _required("prev_tokens", BigInteger, default=0),
    _required("day", Date),  # the latest Pacific day with usage
    _required("day_requests", BigInteger, default=0),  # its effective requests
)

exhaustion = Table(
    "exhaustion", metadata,
    _project_fk(primary_key=True),
    Column("model", String(128), primary_key=True),
    _required("until", UTCDateTime),
    _required("scope", String(16)),  # minute | tokens | day
    _required("quota_ids", Text, default=""),
    _required("recorded_at", UTCDateTime),
)

events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True),
    _required("at", UTCDateTime),
    _required("kind", String(48)),
    _required("level", String(8), default="info"),
    _optional("project_id", String(64)),
    _optional("pool", String(64)),
    _optional("key_id", String(128)),
    _required("message", Text),
    Index("ix_events_at", "at"),
)

meta = Table(
    "meta", metadata,
    Column("name", String(64), primary_key=True),
    _required("value", Text),
    _required("updated_at", UTCDateTime),
)

leases = Table(
    "leases", metadata,
    Column("name", String(64), primary_key=True),
    _required("holder", String(255)),
    _required("epoch", BigInteger, default=0),
    _required("expires_at", UTCDateTime),
)
