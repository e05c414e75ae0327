"""Initial allocation schema: eligibility replica, usage counters, ledger, sticky caller IDs, idempotency.

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROTATION = ["day_start", "day_used", "last_ms", "phone_number"]


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "request_id"),
    )
    op.create_table(
        "feed_cursors",
        sa.Column("upstream", sa.String(32), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("upstream"),
    )
    op.create_table(
        "api_key_replica",
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("key_id"),
        sa.UniqueConstraint("secret_sha256"),
    )
    op.create_table(
        "numbers",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("phone_number", sa.String(16), nullable=False),
        sa.Column("country", sa.String(3), nullable=False),
        sa.Column("area_code", sa.String(8), nullable=False),
        sa.Column("exchange", sa.String(8), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(64), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column("rest_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("warmup_caps", sa.String(200), nullable=False),
        sa.Column("warmup_step_seconds", sa.Integer(), nullable=False),
        sa.Column("warmup_start_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "phone_number"),
    )
    op.create_table(
        "campaigns",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("policy", sa.LargeBinary(), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "campaign_id"),
    )
    op.create_table(
        "pool_members",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("phone_number", sa.String(16), nullable=False),
        sa.Column("gate", sa.SmallInteger(), nullable=False),
        sa.Column("country", sa.String(3), nullable=False),
        sa.Column("area_key", sa.String(16), nullable=False),
        sa.Column("region_key", sa.String(72), nullable=False),
        sa.Column("day_start", sa.BigInteger(), nullable=False),
        sa.Column("day_used", sa.Integer(), nullable=False),
        sa.Column("last_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "campaign_id", "phone_number"),
    )
    op.create_index("ix_pool_area", "pool_members", ["tenant_id", "campaign_id", "gate", "area_key", *_ROTATION])
    op.create_index("ix_pool_region", "pool_members", ["tenant_id", "campaign_id", "gate", "region_key", *_ROTATION])
    op.create_index("ix_pool_country", "pool_members", ["tenant_id", "campaign_id", "gate", "country", *_ROTATION])
    op.create_index("ix_pool_any", "pool_members", ["tenant_id", "campaign_id", "gate", *_ROTATION])
    op.create_index("ix_pool_number", "pool_members", ["tenant_id", "phone_number"])
    op.create_table(
        "number_health",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("phone_number", sa.String(16), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("universal_status", sa.SmallInteger(), nullable=False),
        sa.Column("tmobile_status", sa.SmallInteger(), nullable=False),
        sa.Column("att_status", sa.SmallInteger(), nullable=False),
        sa.Column("verizon_status", sa.SmallInteger(), nullable=False),
        sa.Column("other_status", sa.SmallInteger(), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "phone_number"),
    )
    op.create_table(
        "number_usage",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("phone_number", sa.String(16), nullable=False),
        sa.Column("day_start", sa.BigInteger(), nullable=False),
        sa.Column("day_used", sa.Integer(), nullable=False),
        sa.Column("hour_start", sa.BigInteger(), nullable=False),
        sa.Column("hour_used", sa.Integer(), nullable=False),
        sa.Column("last_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "phone_number"),
    )
    op.create_table(
        "allocations",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("destination", sa.String(16), nullable=False),
        sa.Column("destination_area_key", sa.String(16), nullable=False),
        sa.Column("phone_number", sa.String(16), nullable=False),
        sa.Column("tier", sa.SmallInteger(), nullable=False),
        sa.Column("allocate_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day_start", sa.BigInteger(), nullable=False),
        sa.Column("hour_start", sa.BigInteger(), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.Column("released", sa.Boolean(), nullable=False),
        sa.Column("release_time", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "call_id"),
    )
    op.create_index("ix_allocations_destination", "allocations", ["tenant_id", "destination", "allocate_time"])
    op.create_index("ix_allocations_campaign", "allocations", ["tenant_id", "campaign_id", "allocate_time"])
    op.create_table(
        "prospects",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("destination", sa.String(16), nullable=False),
        sa.Column("sticky_phone_number", sa.String(16), nullable=True),
        sa.Column("sticky_campaign_id", sa.String(64), nullable=True),
        sa.Column("sticky_time", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "destination"),
    )


def downgrade() -> None:
    for table in ("prospects", "allocations", "number_usage", "number_health", "pool_members", "campaigns",
                  "numbers", "api_key_replica", "feed_cursors", "idempotency_keys"):
        op.drop_table(table)
