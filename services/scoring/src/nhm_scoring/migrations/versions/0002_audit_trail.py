"""The audit trail: audit_events, append-only for the application (triggers refuse UPDATE, DELETE, TRUNCATE).

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from nhm_platform import audit
from nhm_scoring.models import audit as audit_log

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    audit.create_table(audit_log)


def downgrade() -> None:
    audit.drop_table(audit_log)
