"""The registry service's tables (SQLAlchemy Core). Enum values are stored by name ("ACTIVE", "A").

No foreign keys: the service keeps the references whole (numbers and tenants are never deleted; a campaign's
assignments go with it in one transaction; writers lock the rows they depend on). On PostgreSQL each foreign
key check runs a plan cached per connection, planned while the parent table was small: a sequential scan
that turned a 10,000-number import into minutes once the table had grown.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from nhm_platform.audit import AuditLog
from nhm_platform.feed import ChangeLog
from nhm_platform.idempotency import IdempotencyStore

metadata = MetaData()
idempotency = IdempotencyStore(metadata)
feed = ChangeLog(metadata, "feed")
audit = AuditLog(metadata, "registry")

# A tenant watcher reads only its own entries; keep that scan short.
Index("ix_feed_changes_tenant_revision", feed.changes.c.tenant_id, feed.changes.c.revision)
# Pruning old request ids.
Index("ix_idempotency_keys_create_time", idempotency.table.c.create_time)


def _time(name: str, nullable: bool = False) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


tenants = Table(
    "tenants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("display_name", String(200), nullable=False),
    Column("legal_name", String(200), nullable=False),
    Column("address", String(2000), nullable=False),
    Column("website", String(200), nullable=False),
    Column("call_purpose", String(2000), nullable=False),
    Column("expected_monthly_volume", BigInteger, nullable=False),
    Column("contact_email", String(200), nullable=False),
    Column("contact_phone", String(16), nullable=False),
    _time("create_time"),
    _time("update_time"),
    Column("etag", String(32), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    # The first characters of the secret, to recognise a key; the secret itself is kept only as a digest.
    Column("prefix", String(16), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    _time("create_time"),
    _time("revoke_time", nullable=True),
    UniqueConstraint("secret_sha256", name="uq_api_keys_secret_sha256"),
    Index("ix_api_keys_tenant_id", "tenant_id", "id"),
)

numbers = Table(
    "numbers",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("phone_number", String(16), nullable=False),
    Column("country", String(2), nullable=False),
    Column("area_code", String(8), nullable=False),
    Column("exchange", String(8), nullable=False),
    Column("region", String(64), nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("display_name", String(64), nullable=False),
    Column("provider", String(200), nullable=False),
    Column("attestation", String(8), nullable=False),
    # JSON list of {program, status, status_time, reference}.
    Column("registrations", Text, nullable=False),
    Column("inbound_enabled", Boolean, nullable=False),
    _time("inbound_required_until", nullable=True),
    Column("state", String(16), nullable=False),
    _time("state_time"),
    _time("rest_until", nullable=True),
    # Comma-separated daily caps and the step length in seconds, while WARMING.
    Column("warmup_daily_caps", String(400), nullable=True),
    Column("warmup_step_seconds", BigInteger, nullable=True),
    _time("warmup_start_time", nullable=True),
    _time("create_time"),
    _time("update_time"),
    Column("etag", String(32), nullable=False),
    PrimaryKeyConstraint("tenant_id", "phone_number", name="pk_numbers"),
    # One per order of ListNumbers (and the filters that share it), each ending in the key: keyset pages.
    Index("ix_numbers_create_time", "tenant_id", "create_time", "phone_number"),
    Index("ix_numbers_update_time", "tenant_id", "update_time", "phone_number"),
    Index("ix_numbers_state", "tenant_id", "state", "phone_number"),
    Index("ix_numbers_area_code", "tenant_id", "area_code", "phone_number"),
    Index("ix_numbers_region", "tenant_id", "region", "phone_number"),
)

number_labels = Table(
    "number_labels",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("phone_number", String(16), nullable=False),
    Column("key", String(63), nullable=False),
    Column("value", String(256), nullable=False),
    PrimaryKeyConstraint("tenant_id", "phone_number", "key", name="pk_number_labels"),
    Index("ix_number_labels_key_value", "tenant_id", "key", "value"),
)

number_transitions = Table(
    "number_transitions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", String(64), nullable=False),
    Column("phone_number", String(16), nullable=False),
    # Empty when the number was created in to_state.
    Column("from_state", String(16), nullable=False),
    Column("to_state", String(16), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("reason", String(1000), nullable=False),
    _time("transition_time"),
    Index("ix_number_transitions_number", "tenant_id", "phone_number", "transition_time", "id"),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", String(2000), nullable=False),
    # JSON of the effective CallingPolicy.
    Column("policy", Text, nullable=False),
    _time("create_time"),
    _time("update_time"),
    Column("etag", String(32), nullable=False),
    UniqueConstraint("tenant_id", "name", name="uq_campaigns_tenant_name"),
    Index("ix_campaigns_tenant_id", "tenant_id", "id"),
)

campaign_numbers = Table(
    "campaign_numbers",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("campaign_id", String(40), nullable=False),
    Column("phone_number", String(16), nullable=False),
    PrimaryKeyConstraint("tenant_id", "campaign_id", "phone_number", name="pk_campaign_numbers"),
    Index("ix_campaign_numbers_number", "tenant_id", "phone_number"),
)
