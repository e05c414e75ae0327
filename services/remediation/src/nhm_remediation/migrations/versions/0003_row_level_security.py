"""Row-level security on PostgreSQL for every remediation table that holds a tenant's rows (what it does:
nhm_platform.migrations.protect_rows; SQLite has none, so nothing happens there).
Pool alerts too, which carry no tenant: each is visible with its case (whose policy applies).

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

from nhm_platform.migrations import protect_rows, protect_tenant_tables, unprotect_rows, unprotect_tenant_tables

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Tables with a tenant_id column.
_TENANT_TABLES = (
    "alert_deliveries",
    "alert_subscriptions",
    "alerts",
    "api_key_replica",
    "assignments",
    "audit_events",
    "campaigns",
    "case_feed_changes",
    "cases",
    "digest_schedule",
    "health",
    "idempotency_keys",
    "numbers",
    "policies",
    "registry_actions",
    "tasks",
    "tenants",
)


def upgrade() -> None:
    protect_tenant_tables(_TENANT_TABLES)
    protect_rows("pool_alerts", using="EXISTS (SELECT 1 FROM cases WHERE cases.id = pool_alerts.case_id)")


def downgrade() -> None:
    unprotect_rows("pool_alerts")
    unprotect_tenant_tables(_TENANT_TABLES)
