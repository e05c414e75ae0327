"""Row-level security on PostgreSQL for every scoring table that holds a tenant's rows (what it does:
nhm_platform.migrations.protect_rows; SQLite has none, so nothing happens there).

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

from nhm_platform.migrations import protect_tenant_tables, unprotect_tenant_tables

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Tables with a tenant_id column.
_TENANT_TABLES = (
    "api_key_replica",
    "assignments",
    "audit_events",
    "call_outcomes",
    "complaints",
    "daily_buckets",
    "feed_changes",
    "health",
    "health_history",
    "hourly_buckets",
    "idempotency_keys",
    "numbers",
    "observations",
    "policies",
    "prospect_daily",
    "source_labels",
    "status_counts",
    "talk_histogram",
)


def upgrade() -> None:
    protect_tenant_tables(_TENANT_TABLES)


def downgrade() -> None:
    unprotect_tenant_tables(_TENANT_TABLES)
