"""Row-level security on PostgreSQL for every registry table that holds a tenant's rows (what it does:
nhm_platform.migrations.protect_rows; SQLite has none, so nothing happens there).
The tenants table too: a tenant sees its own row.

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
    "api_keys",
    "audit_events",
    "campaign_numbers",
    "campaigns",
    "feed_changes",
    "idempotency_keys",
    "number_labels",
    "number_transitions",
    "numbers",
)


def upgrade() -> None:
    protect_tenant_tables(_TENANT_TABLES)
    protect_rows("tenants", "id")


def downgrade() -> None:
    unprotect_rows("tenants")
    unprotect_tenant_tables(_TENANT_TABLES)
