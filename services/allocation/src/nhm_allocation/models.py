"""The allocation service's tables.

Replica of the registry and scoring (rebuilt from their feeds): ``numbers``, ``campaigns``, ``pool_members``
(a campaign's numbers, with what the candidate indexes need), ``number_health``, and the API keys.
Owned here: ``number_usage`` (one row per number: the daily and hourly counters), ``allocations`` (the
ledger: one row per call id), ``prospects`` (the sticky caller ID per prospect) and idempotency keys.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
)

from nhm_platform.idempotency import IdempotencyStore
from nhm_platform.replica import ApiKeyReplica, CursorStore

metadata = MetaData()
idempotency = IdempotencyStore(metadata)
cursors = CursorStore(metadata)
api_keys = ApiKeyReplica(metadata)

numbers = Table(
    "numbers",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("phone_number", String(16), nullable=False),
    Column("country", String(3), nullable=False),
    Column("area_code", String(8), nullable=False),
    Column("exchange", String(8), nullable=False),
    Column("region", String(64), nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("display_name", String(64), nullable=False),
    Column("state", SmallInteger, nullable=False),
    Column("rest_until", DateTime(timezone=True), nullable=True),
    # The warm-up plan: daily caps separated by commas, and the step length in seconds.
    Column("warmup_caps", String(200), nullable=False),
    Column("warmup_step_seconds", Integer, nullable=False),
    Column("warmup_start_time", DateTime(timezone=True), nullable=True),
    Column("update_time", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant_id", "phone_number"),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("campaign_id", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    # nhm.registry.v1.CallingPolicy, serialized.
    Column("policy", LargeBinary, nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant_id", "campaign_id"),
)

# One row per (campaign, number) assignment. gate and the place keys are derived from numbers, campaigns
# and number_health; day_start/day_used/last_ms copy number_usage so that one index walk per tier returns
# the least used numbers first (the allocation that bumps number_usage updates these copies with it).
pool_members = Table(
    "pool_members",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("campaign_id", String(64), nullable=False),
    Column("phone_number", String(16), nullable=False),
    Column("gate", SmallInteger, nullable=False),
    Column("country", String(3), nullable=False),
    Column("area_key", String(16), nullable=False),
    Column("region_key", String(72), nullable=False),
    Column("day_start", BigInteger, nullable=False),
    Column("day_used", Integer, nullable=False),
    Column("last_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("tenant_id", "campaign_id", "phone_number"),
    Index("ix_pool_area", "tenant_id", "campaign_id", "gate", "area_key", "day_start", "day_used", "last_ms",
          "phone_number"),
    Index("ix_pool_region", "tenant_id", "campaign_id", "gate", "region_key", "day_start", "day_used", "last_ms",
          "phone_number"),
    Index("ix_pool_country", "tenant_id", "campaign_id", "gate", "country", "day_start", "day_used", "last_ms",
          "phone_number"),
    Index("ix_pool_any", "tenant_id", "campaign_id", "gate", "day_start", "day_used", "last_ms", "phone_number"),
    Index("ix_pool_number", "tenant_id", "phone_number"),
)

number_health = Table(
    "number_health",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("phone_number", String(16), nullable=False),
    Column("status", SmallInteger, nullable=False),
    # What applies whatever the prospect's carrier (see health_view).
    Column("universal_status", SmallInteger, nullable=False),
    # Each carrier's view; 0 when scoring gave none.
    Column("tmobile_status", SmallInteger, nullable=False),
    Column("att_status", SmallInteger, nullable=False),
    Column("verizon_status", SmallInteger, nullable=False),
    Column("other_status", SmallInteger, nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant_id", "phone_number"),
)

# A number's usage: the day (epoch second of the local midnight in the cap-reset zone) and UTC hour its
# counters count, and the calls in each. Changed only by a conditional UPDATE ... WHERE used < cap.
number_usage = Table(
    "number_usage",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("phone_number", String(16), nullable=False),
    Column("day_start", BigInteger, nullable=False),
    Column("day_used", Integer, nullable=False),
    Column("hour_start", BigInteger, nullable=False),
    Column("hour_used", Integer, nullable=False),
    Column("last_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("tenant_id", "phone_number"),
)

# The ledger: one row per allocated call id, written in the transaction that bumped the counters.
allocations = Table(
    "allocations",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("call_id", String(128), nullable=False),
    Column("campaign_id", String(64), nullable=False),
    Column("destination", String(16), nullable=False),
    Column("destination_area_key", String(16), nullable=False),
    Column("phone_number", String(16), nullable=False),
    Column("tier", SmallInteger, nullable=False),
    Column("allocate_time", DateTime(timezone=True), nullable=False),
    Column("day_start", BigInteger, nullable=False),
    Column("hour_start", BigInteger, nullable=False),
    # False for a fallback caller ID, which no cap counts.
    Column("counted", Boolean, nullable=False),
    Column("released", Boolean, nullable=False),
    Column("release_time", DateTime(timezone=True), nullable=True),
    PrimaryKeyConstraint("tenant_id", "call_id"),
    Index("ix_allocations_destination", "tenant_id", "destination", "allocate_time"),
    Index("ix_allocations_campaign", "tenant_id", "campaign_id", "allocate_time"),
)

# The last caller ID each prospect saw. The row is also the lock that serialises concurrent calls to one
# prospect, so per-prospect limits hold across replicas.
prospects = Table(
    "prospects",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("destination", String(16), nullable=False),
    Column("sticky_phone_number", String(16), nullable=True),
    Column("sticky_campaign_id", String(64), nullable=True),
    Column("sticky_time", DateTime(timezone=True), nullable=True),
    PrimaryKeyConstraint("tenant_id", "destination"),
)
