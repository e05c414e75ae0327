"""PostgreSQL storage settings for the tables every allocation updates.

Every AllocateNumber updates one number_usage, pool_members, prospects and idempotency_keys row. Under the
default autovacuum (20% of a table dead before a pass, cost-limited) a 100-number pool piles up dead versions
of its hot rows within a minute and throughput decays to about a third (docs/performance.md). These tables
get vacuumed after a fixed count of dead rows, without the cost delay, and leave room in each page so that an
update whose indexed columns do not change stays on its page (a HOT update, no index entry). An operator may
tune them further with ALTER TABLE ... SET (...); SQLite has no such settings.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Table: fillfactor (percent of each page filled by inserts; the rest is kept for updated versions).
_HOT_TABLES = {"number_usage": 50, "pool_members": 70, "prospects": 80, "idempotency_keys": 80}
_AUTOVACUUM = ("autovacuum_vacuum_threshold = 2000, autovacuum_vacuum_scale_factor = 0, "
               "autovacuum_vacuum_cost_delay = 0, autovacuum_analyze_threshold = 5000, "
               "autovacuum_analyze_scale_factor = 0.05")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, fillfactor in _HOT_TABLES.items():
        op.execute(f"ALTER TABLE {table} SET (fillfactor = {fillfactor}, {_AUTOVACUUM})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _HOT_TABLES:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor, autovacuum_vacuum_threshold, "
                   "autovacuum_vacuum_scale_factor, autovacuum_vacuum_cost_delay, autovacuum_analyze_threshold, "
                   "autovacuum_analyze_scale_factor)")
