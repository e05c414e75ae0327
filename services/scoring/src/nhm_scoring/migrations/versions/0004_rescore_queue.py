"""rescore_queue: the numbers whose health a background pass recomputes (rescore_delay > 0), with row-level
security on PostgreSQL like every other tenant table.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from nhm_platform.migrations import protect_rows, unprotect_rows

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rescore_queue",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("phone_number", sa.String(length=16), nullable=False),
        sa.Column("marks", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "phone_number", name="pk_rescore_queue"),
    )
    protect_rows("rescore_queue")


def downgrade() -> None:
    unprotect_rows("rescore_queue")
    op.drop_table("rescore_queue")
