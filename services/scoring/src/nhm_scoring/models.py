"""The scoring service's tables (SQLAlchemy Core).

Three kinds: what scoring keeps of the registry (numbers, assignments, API keys), what it is told (raw events,
one row per event id, which is what makes ingestion idempotent), and what it derives (hourly and daily
buckets kept incrementally, current labels per source, health, its history and its change feed).
Hours and days are UTC and stored as integers: seconds since the epoch // 3600 and // 86400.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
)

from nhm_platform.audit import AuditLog
from nhm_platform.feed import ChangeLog
from nhm_platform.idempotency import IdempotencyStore
from nhm_platform.replica import ApiKeyReplica, CursorStore

metadata = MetaData()
idempotency = IdempotencyStore(metadata)
feed = ChangeLog(metadata, "feed")
cursors = CursorStore(metadata)
api_keys = ApiKeyReplica(metadata)
audit = AuditLog(metadata, "scoring")

Index("ix_feed_changes_tenant_revision", feed.changes.c.tenant_id, feed.changes.c.revision)
Index("ix_idempotency_keys_create_time", idempotency.table.c.create_time)


def _time(name: str, nullable: bool = False) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


def _count(name: str) -> Column[object]:
    return Column(name, Integer, nullable=False, default=0)


def _key() -> list[Column[object]]:
    return [Column("tenant_id", String(64), nullable=False), Column("phone_number", String(16), nullable=False)]


# --- From the registry's feed ---

numbers = Table(
    "numbers",
    metadata,
    *_key(),
    Column("area_code", String(8), nullable=False),
    # Attestation letter ("A", "B", "C") or "" when unknown.
    Column("attestation", String(8), nullable=False),
    Column("inbound_enabled", Boolean, nullable=False),
    # Lifecycle state name ("ACTIVE", "RESTING", ...).
    Column("state", String(16), nullable=False),
    _time("update_time"),
    PrimaryKeyConstraint("tenant_id", "phone_number", name="pk_numbers"),
)

assignments = Table(
    "assignments",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("campaign_id", String(64), nullable=False),
    Column("phone_number", String(16), nullable=False),
    PrimaryKeyConstraint("tenant_id", "campaign_id", "phone_number", name="pk_assignments"),
    Index("ix_assignments_number", "tenant_id", "phone_number"),
)

# --- Raw events: one row per event id ---

call_outcomes = Table(
    "call_outcomes",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("phone_number", String(16), nullable=False),
    # CallDirection value.
    Column("direction", SmallInteger, nullable=False),
    Column("remote_number", String(16), nullable=False),
    _time("start_time"),
    Column("answered", Boolean, nullable=False),
    Column("talk_ms", BigInteger, nullable=False),
    Column("sip_code", Integer, nullable=False),
    # CallDisposition value.
    Column("disposition", SmallInteger, nullable=False),
    Column("campaign_id", String(64), nullable=False),
    Column("call_id", String(128), nullable=False),
    _time("ingest_time"),
    PrimaryKeyConstraint("tenant_id", "event_id", name="pk_call_outcomes"),
    # Sample call times for evidence (newest outbound calls of a number).
    Index("ix_call_outcomes_number_time", "tenant_id", "phone_number", "start_time"),
    Index("ix_call_outcomes_start_time", "start_time"),
)

complaints = Table(
    "complaints",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("phone_number", String(16), nullable=False),
    # ComplaintKind value.
    Column("kind", SmallInteger, nullable=False),
    Column("remote_number", String(16), nullable=False),
    _time("report_time"),
    Column("source", String(200), nullable=False),
    Column("detail", String(2000), nullable=False),
    _time("ingest_time"),
    PrimaryKeyConstraint("tenant_id", "event_id", name="pk_complaints"),
    Index("ix_complaints_report_time", "report_time"),
)

observations = Table(
    "observations",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("phone_number", String(16), nullable=False),
    # ReputationSource and ReputationLabel values.
    Column("source", SmallInteger, nullable=False),
    Column("label", SmallInteger, nullable=False),
    Column("raw_label", String(200), nullable=False),
    Column("score", Float, nullable=True),
    _time("observe_time"),
    _time("ingest_time"),
    PrimaryKeyConstraint("tenant_id", "event_id", name="pk_observations"),
    Index("ix_observations_observe_time", "observe_time"),
)

# --- Derived, kept incrementally ---

hourly_buckets = Table(
    "hourly_buckets",
    metadata,
    *_key(),
    Column("hour", BigInteger, nullable=False),
    _count("outbound"),
    _count("answered"),
    _count("sip608"),
    # Outbound calls (and answered ones) placed while the number was Flagged or Blocked overall, and while
    # each carrier labelled it Flagged or Blocked: the weekly report's call shares and answer rates.
    _count("flagged_outbound"),
    _count("flagged_answered"),
    _count("flagged_tmobile"),
    _count("flagged_att"),
    _count("flagged_verizon"),
    PrimaryKeyConstraint("tenant_id", "phone_number", "hour", name="pk_hourly_buckets"),
    Index("ix_hourly_buckets_tenant_hour", "tenant_id", "hour"),
    Index("ix_hourly_buckets_hour", "hour"),
)

daily_buckets = Table(
    "daily_buckets",
    metadata,
    *_key(),
    Column("day", Integer, nullable=False),
    _count("outbound"),
    _count("answered"),
    _count("inbound"),
    # Talk time of answered outbound calls, milliseconds.
    Column("talk_ms", BigInteger, nullable=False, default=0),
    # Outbound calls answered with SIP 603, 607 or 608 (or disposed REJECTED/BLOCKED).
    _count("blocked"),
    _count("complaints"),
    # The most calls to one prospect this day (from prospect_daily).
    _count("max_prospect_calls"),
    PrimaryKeyConstraint("tenant_id", "phone_number", "day", name="pk_daily_buckets"),
    Index("ix_daily_buckets_day", "day"),
)

# Answered outbound calls per whole second of talk time (60: a minute or more), so the short-call share
# follows the policy's short_call_duration even after it changes.
talk_histogram = Table(
    "talk_histogram",
    metadata,
    *_key(),
    Column("day", Integer, nullable=False),
    Column("seconds", SmallInteger, nullable=False),
    _count("calls"),
    PrimaryKeyConstraint("tenant_id", "phone_number", "day", "seconds", name="pk_talk_histogram"),
    Index("ix_talk_histogram_day", "day"),
)

prospect_daily = Table(
    "prospect_daily",
    metadata,
    *_key(),
    Column("day", Integer, nullable=False),
    Column("remote_number", String(16), nullable=False),
    _count("calls"),
    PrimaryKeyConstraint("tenant_id", "phone_number", "day", "remote_number", name="pk_prospect_daily"),
    Index("ix_prospect_daily_day", "day"),
)

source_labels = Table(
    "source_labels",
    metadata,
    *_key(),
    Column("source", SmallInteger, nullable=False),
    Column("label", SmallInteger, nullable=False),
    Column("raw_label", String(200), nullable=False),
    Column("score", Float, nullable=True),
    _time("observe_time"),
    PrimaryKeyConstraint("tenant_id", "phone_number", "source", name="pk_source_labels"),
    # ListHealth by source starts from the source's numbers.
    Index("ix_source_labels_source", "tenant_id", "source", "phone_number"),
)

health = Table(
    "health",
    metadata,
    *_key(),
    Column("area_code", String(8), nullable=False),
    # HealthStatus value.
    Column("status", SmallInteger, nullable=False),
    Column("score", SmallInteger, nullable=False),
    _time("status_time"),
    _time("update_time"),
    # Carriers labelling the number Flagged or Blocked: 1 T-Mobile, 2 AT&T, 4 Verizon.
    Column("carrier_flags", SmallInteger, nullable=False),
    # Whether time alone can change the health (recent activity or a live label): the periodic pass rescores these.
    Column("time_sensitive", Boolean, nullable=False),
    # NumberHealth as served (without update_time and status_duration, which are set when read).
    Column("payload", LargeBinary, nullable=False),
    PrimaryKeyConstraint("tenant_id", "phone_number", name="pk_health"),
    Index("ix_health_status", "tenant_id", "status", "phone_number"),
    Index("ix_health_area_code", "tenant_id", "area_code", "phone_number"),
    # Counts per status within an area code.
    Index("ix_health_area_status", "tenant_id", "area_code", "status"),
    Index("ix_health_time_sensitive", "time_sensitive", "tenant_id", "phone_number"),
    # Room on each page, so that rewriting a number's health (no indexed column changed) stays a HOT update.
    postgresql_with={"fillfactor": 70},
)

# Numbers whose events arrived but whose health is not recomputed yet (rescore_delay > 0): each row is written with
# the events, and removed with the health it asked for. marks: the event batches that asked since.
rescore_queue = Table(
    "rescore_queue",
    metadata,
    *_key(),
    Column("marks", BigInteger, nullable=False),
    PrimaryKeyConstraint("tenant_id", "phone_number", name="pk_rescore_queue"),
)

# Numbers per status per tenant, kept with every health write: the dashboard's unfiltered counts.
status_counts = Table(
    "status_counts",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("numbers", Integer, nullable=False),
    PrimaryKeyConstraint("tenant_id", "status", name="pk_status_counts"),
)

health_history = Table(
    "health_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    *_key(),
    # HealthStatus values; from_status 0 when the number was first scored.
    Column("from_status", SmallInteger, nullable=False),
    Column("to_status", SmallInteger, nullable=False),
    Column("score", SmallInteger, nullable=False),
    Column("cause", String(2000), nullable=False),
    # Comma-separated RiskFactorKind and ReputationSource values behind the status.
    Column("factors", String(200), nullable=False),
    Column("sources", String(200), nullable=False),
    _time("transition_time"),
    Index("ix_health_history_number", "tenant_id", "phone_number", "transition_time", "id"),
    Index("ix_health_history_tenant_time", "tenant_id", "transition_time"),
)

policies = Table(
    "policies",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    # JSON of the fields the tenant set (durations in seconds); the rest take the defaults.
    Column("overrides", Text, nullable=False),
    _time("update_time"),
)
