"""Row-level security on PostgreSQL for every allocation table that holds a tenant's rows (what it does:
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
    "allocations",
    "api_key_replica",
    "campaigns",
    "idempotency_keys",
    "number_health",
    "number_usage",
    "numbers",
    "pool_members",
    "prospects",
)


def upgrade() -> None:
    protect_tenant_tables(_TENANT_TABLES)


def downgrade() -> None:
    unprotect_tenant_tables(_TENANT_TABLES)
