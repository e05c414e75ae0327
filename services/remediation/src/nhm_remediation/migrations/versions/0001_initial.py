"""Initial remediation schema: cases, tasks, audit events, registry actions and alert outboxes, policies,
alert subscriptions, the case feed, and replicas of the registry's and scoring's feeds.

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


def upgrade() -> None:
    op.create_table('alert_subscriptions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=24), nullable=False),
    sa.Column('target', sa.String(length=2000), nullable=False),
    sa.Column('kinds', sa.Text(), nullable=False),
    sa.Column('campaign_ids', sa.Text(), nullable=False),
    sa.Column('signing_secret', sa.String(length=200), nullable=False),
    sa.Column('create_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delete_time', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_alert_subscriptions_tenant', 'alert_subscriptions', ['tenant_id', 'id'], unique=False)
    op.create_table('alerts',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=48), nullable=False),
    sa.Column('case_id', sa.String(length=40), nullable=False),
    sa.Column('phone_number', sa.String(length=16), nullable=False),
    sa.Column('campaign_ids', sa.Text(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('create_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('api_key_replica',
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('secret_sha256', sa.String(length=64), nullable=False),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('key_id'),
    sa.UniqueConstraint('secret_sha256')
    )
    op.create_table('assignments',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('campaign_id', sa.String(length=80), nullable=False),
    sa.Column('phone_number', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'campaign_id', 'phone_number')
    )
    op.create_index('ix_assignments_number', 'assignments', ['tenant_id', 'phone_number'], unique=False)
    op.create_table('campaigns',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('campaign_id', sa.String(length=80), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'campaign_id')
    )
    op.create_table('case_feed_changes',
    sa.Column('revision', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.SmallInteger(), nullable=False),
    sa.Column('resource_type', sa.String(length=32), nullable=False),
    sa.Column('resource_key', sa.String(length=128), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('change_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('revision')
    )
    op.create_table('case_feed_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.Column('compacted_through', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('cases',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('phone_number', sa.String(length=16), nullable=False),
    sa.Column('open_phone_number', sa.String(length=16), nullable=True),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('stage', sa.String(length=24), nullable=False),
    sa.Column('cycle', sa.Integer(), nullable=False),
    sa.Column('triggers', sa.Text(), nullable=False),
    sa.Column('stage_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('recommendation', sa.Text(), nullable=False),
    sa.Column('open_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('close_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('update_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('labelled_check_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('waiting', sa.Boolean(), nullable=False),
    sa.Column('due_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'open_phone_number', name='uq_cases_open_number')
    )
    op.create_index('ix_cases_due', 'cases', ['due_time'], unique=False)
    op.create_index('ix_cases_tenant_phone', 'cases', ['tenant_id', 'phone_number'], unique=False)
    op.create_table('digest_schedule',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('next_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id')
    )
    op.create_table('feed_cursors',
    sa.Column('upstream', sa.String(length=32), nullable=False),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.Column('update_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('upstream')
    )
    op.create_table('health',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('phone_number', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('labels', sa.Text(), nullable=False),
    sa.Column('status_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'phone_number')
    )
    op.create_table('idempotency_keys',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('request_id', sa.String(length=128), nullable=False),
    sa.Column('method', sa.String(length=64), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('response', sa.LargeBinary(), nullable=True),
    sa.Column('create_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'request_id')
    )
    op.create_table('numbers',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('phone_number', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('attestation', sa.String(length=24), nullable=False),
    sa.Column('provider', sa.String(length=200), nullable=False),
    sa.Column('display_name', sa.String(length=64), nullable=False),
    sa.Column('registrations', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'phone_number')
    )
    op.create_table('policies',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('settings', sa.Text(), nullable=False),
    sa.Column('update_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id')
    )
    op.create_table('tenants',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('profile', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id')
    )
    op.create_table('alert_deliveries',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('alert_id', sa.String(length=40), nullable=False),
    sa.Column('subscription_id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=48), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('next_attempt_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('create_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deliver_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_alert_deliveries_pending', 'alert_deliveries', ['state', 'next_attempt_time'], unique=False)
    op.create_index('ix_alert_deliveries_tenant', 'alert_deliveries', ['tenant_id', 'id'], unique=False)
    op.create_table('case_events',
    sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('case_id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('task_id', sa.String(length=40), nullable=False),
    sa.Column('event_time', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], ),
    sa.PrimaryKeyConstraint('seq')
    )
    op.create_index('ix_case_events_case', 'case_events', ['case_id', 'seq'], unique=False)
    op.create_table('pool_alerts',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('case_id', sa.String(length=40), nullable=False),
    sa.Column('campaign_id', sa.String(length=80), nullable=False),
    sa.Column('resting_share', sa.Float(), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('create_time', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_pool_alerts_case', 'pool_alerts', ['case_id'], unique=False)
    op.create_table('registry_actions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('case_id', sa.String(length=40), nullable=False),
    sa.Column('phone_number', sa.String(length=16), nullable=False),
    sa.Column('task_id', sa.String(length=40), nullable=False),
    sa.Column('method', sa.String(length=24), nullable=False),
    sa.Column('target_state', sa.String(length=24), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('request_id', sa.String(length=128), nullable=False),
    sa.Column('rest_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('warmup_caps', sa.Text(), nullable=False),
    sa.Column('warmup_step_seconds', sa.Float(), nullable=True),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('next_attempt_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('create_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('done_time', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_registry_actions_case', 'registry_actions', ['case_id', 'id'], unique=False)
    op.create_index('ix_registry_actions_pending', 'registry_actions', ['status', 'next_attempt_time'], unique=False)
    op.create_table('tasks',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('case_id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('cycle', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=False),
    sa.Column('program', sa.String(length=24), nullable=False),
    sa.Column('source', sa.String(length=24), nullable=False),
    sa.Column('due_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reference', sa.String(length=500), nullable=False),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.Column('outcome', sa.String(length=24), nullable=True),
    sa.Column('prefill', sa.Text(), nullable=False),
    sa.Column('create_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('update_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('overdue_alert_time', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_tasks_case', 'tasks', ['case_id'], unique=False)
    op.create_index('ix_tasks_tenant_status_due', 'tasks', ['tenant_id', 'status', 'due_time'], unique=False)
    head = sa.table("case_feed_head", sa.column("id", sa.Integer), sa.column("revision", sa.BigInteger),
                    sa.column("compacted_through", sa.BigInteger))
    op.bulk_insert(head, [{"id": 1, "revision": 0, "compacted_through": 0}])


def downgrade() -> None:
    op.drop_index('ix_tasks_tenant_status_due', table_name='tasks')
    op.drop_index('ix_tasks_case', table_name='tasks')
    op.drop_table('tasks')
    op.drop_index('ix_registry_actions_pending', table_name='registry_actions')
    op.drop_index('ix_registry_actions_case', table_name='registry_actions')
    op.drop_table('registry_actions')
    op.drop_index('ix_pool_alerts_case', table_name='pool_alerts')
    op.drop_table('pool_alerts')
    op.drop_index('ix_case_events_case', table_name='case_events')
    op.drop_table('case_events')
    op.drop_index('ix_alert_deliveries_tenant', table_name='alert_deliveries')
    op.drop_index('ix_alert_deliveries_pending', table_name='alert_deliveries')
    op.drop_table('alert_deliveries')
    op.drop_table('tenants')
    op.drop_table('policies')
    op.drop_table('numbers')
    op.drop_table('idempotency_keys')
    op.drop_table('health')
    op.drop_table('feed_cursors')
    op.drop_table('digest_schedule')
    op.drop_index('ix_cases_tenant_phone', table_name='cases')
    op.drop_index('ix_cases_due', table_name='cases')
    op.drop_table('cases')
    op.drop_table('case_feed_head')
    op.drop_table('case_feed_changes')
    op.drop_table('campaigns')
    op.drop_index('ix_assignments_number', table_name='assignments')
    op.drop_table('assignments')
    op.drop_table('api_key_replica')
    op.drop_table('alerts')
    op.drop_index('ix_alert_subscriptions_tenant', table_name='alert_subscriptions')
    op.drop_table('alert_subscriptions')
