"""The audit trail: audit_events, append-only for the application (triggers refuse UPDATE, DELETE, TRUNCATE).

Case events become audit events (one way to record who changed what): every case_events row is copied, as
resource "cases/<case>" (or "cases/<case>/tasks/<task>"), action its event type, reason its detail, and actor
its actor with the role its prefix names ("system" when it names none). Then case_events is dropped.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from nhm_platform import audit
from nhm_remediation.models import audit as audit_log

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COPY = """
INSERT INTO audit_events (tenant_id, event_time, actor, actor_role, actor_key_id, request_id, resource_type,
                          resource_name, action, changes, reason)
SELECT tenant_id, event_time, actor,
       CASE WHEN actor LIKE 'tenant:%' OR actor LIKE 'read_only:%' THEN 'TENANT'
            WHEN actor LIKE 'admin:%' THEN 'ADMIN'
            WHEN actor LIKE 'service:%' THEN 'SERVICE'
            ELSE 'SYSTEM' END,
       '', '',
       CASE WHEN task_id = '' THEN 'case' ELSE 'task' END,
       CASE WHEN task_id = '' THEN 'cases/' || case_id ELSE 'cases/' || case_id || '/tasks/' || task_id END,
       event_type, '[]', detail
FROM case_events ORDER BY seq
"""

def upgrade() -> None:
    audit.create_table(audit_log)
    op.execute(_COPY)
    op.drop_index("ix_case_events_case", table_name="case_events")
    op.drop_table("case_events")


def downgrade() -> None:
    op.create_table(
        "case_events",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("task_id", sa.String(length=40), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_case_events_case", "case_events", ["case_id", "seq"], unique=False)
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT tenant_id, event_time, actor, resource_name, action, reason FROM audit_events"
                                " WHERE resource_type IN ('case', 'task') ORDER BY seq")).all()
    events = []
    for row in rows:
        parts = row.resource_name.split("/")  # cases/<case>[/tasks/<task>]
        events.append({"case_id": parts[1], "tenant_id": row.tenant_id, "event_type": row.action,
                       "actor": row.actor, "detail": row.reason, "task_id": parts[3] if len(parts) > 3 else "",
                       "event_time": row.event_time})
    if events:
        bind.execute(sa.text("INSERT INTO case_events (case_id, tenant_id, event_type, actor, detail, task_id,"
                             " event_time) VALUES (:case_id, :tenant_id, :event_type, :actor, :detail, :task_id,"
                             " :event_time)"), events)
    audit.drop_table(audit_log)
