"""Initial scoring schema: the registry replica, raw events, buckets, labels, health, its history and feed.

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
    sa.Column('campaign_id', sa.String(length=64), nullable=False),
    sa.Column('phone_number', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'campaign_id', 'phone_number', name='pk_assignments')
    )
    op.create_index('ix_assignments_number', 'assignments', ['tenant_id', 'phone_number'], unique=False)
    op.create_table('call_outcomes',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('phone_number', sa.String(length=16), nullable=False),
    sa.Column('direction', sa.SmallInteger(), nullable=False),
    sa.Column('remote_number', sa.String(length=16), nullable=False),
    sa.Column('start_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered', sa.Boolean(), nullable=False),
    sa.Column('talk_ms', sa.BigInteger(), nullable=False),
    sa.Column('sip_code', sa.Integer(), nullable=False),
    sa.Column('disposition', sa.SmallInteger(), nullable=False),
    sa.Column('campaign_id', sa.String(length=64), nullable=False),
    sa.Column('call_id', sa.String(length=128), nullable=False),
    sa.Column('ingest_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'event_id', name='pk_call_outcomes')
    )
    op.create_index('ix_call_outcomes_number_time', 'call_outcomes', ['tenant_id', 'phone_number', 'start_time'], unique=False)
    op.create_index('ix_call_outcomes_start_time', 'call_outcomes', ['start_time'], unique=False)
    op.create_table('complaints',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('phone_number', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.SmallInteger(), nullable=False),
    sa.Column('remote_number', sa.String(length=16), nullable=False),
    sa.Column('report_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('detail', sa.String(length=2000), nullable=False),
    sa.Column('ingest_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'event_id', name='pk_complaints')
    )
    op.create_index('ix_complaints_report_time', 'complaints', ['report_time'], unique=False)
    op.create_table('daily_buckets',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('phone_number', sa.String(length=16), nullable=False),
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('outbound', sa.Integer(), nullable=False),
    sa.Column('answered', sa.Integer(), nullable=False),
    sa.Column('inbound', sa.Integer(), nullable=False),
    sa.Column('talk_ms', sa.BigInteger(), nullable=False),
    sa.Column('blocked', sa.Integer(), nullable=False),
    sa.Column('complaints', sa.Integer(), nullable=False),
    sa.Column('max_prospect_calls', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'phone_number', 'day', name='pk_daily_buckets')
    )
    op.create_index('ix_daily_buckets_day', 'daily_buckets', ['day'], unique=False)
    op.create_table('feed_changes',
    sa.Column('revision', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.SmallInteger(), nullable=False),
    sa.Column('resource_type', sa.String(length=32), nullable=False),
    sa.Column('resource_key', sa.String(length=128), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('change_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('revision')
    )
    op.create_index('ix_feed_changes_tenant_revision', 'feed_changes', ['tenant_id', 'revision'], unique=False)
    op.create_table('feed_cursors',
    sa.Column('upstream', sa.String(length=32), nullable=False),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.Column('update_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('upstream')
    )
    op.create_table('feed_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.Column('compacted_through', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('health',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('phone_number', sa.String(length=16), nullable=False),
    sa.Column('area_code', sa.String(length=8), nullable=False),
    sa.Column('status', sa.SmallInteger(), nullable=False),
    sa.Column('score', sa.SmallInteger(), nullable=False),
    sa.Column('status_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('update_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('carrier_flags', sa.SmallInteger(), nullable=False),
    sa.Column('time_sensitive', sa.Boolean(), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'phone_number', name='pk_health'),
    postgresql_with={'fillfactor': 70}
    )
    op.create_index('ix_health_area_code', 'health', ['tenant_id', 'area_code', 'phone_number'], unique=False)
    op.create_index('ix_health_area_status', 'health', ['tenant_id', 'area_code', 'status'], unique=False)
    op.create_index('ix_health_status', 'health', ['tenant_id', 'status', 'phone_number'], unique=False)
    op.create_index('ix_health_time_sensitive', 'health', ['time_sensitive', 'tenant_id', 'phone_number'], unique=False)
    op.create_table('health_history',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('phone_number', sa.String(length=16), nullable=False),
    sa.Column('from_status', sa.SmallInteger(), nullable=False),
    sa.Column('to_status', sa.SmallInteger(), nullable=False),
    sa.Column('score', sa.SmallInteger(), nullable=False),
    sa.Column('cause', sa.String(length=2000), nullable=False),
    sa.Column('factors', sa.String(length=200), nullable=False),
    sa.Column('sources', sa.String(length=200), nullable=False),
    sa.Column('transition_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_health_history_number', 'health_history', ['tenant_id', 'phone_number', 'transition_time', 'id'], unique=False)
    op.create_index('ix_health_history_tenant_time', 'health_history', ['tenant_id', 'transition_time'], unique=False)
    op.create_table('hourly_buckets',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('phone_number', sa.String(length=16), nullable=False),
    sa.Column('hour', sa.BigInteger(), nullable=False),
    sa.Column('outbound', sa.Integer(), nullable=False),
    sa.Column('answered', sa.Integer(), nullable=False),
    sa.Column('sip608', sa.Integer(), nullable=False),
    sa.Column('flagged_outbound', sa.Integer(), nullable=False),
    sa.Column('flagged_answered', sa.Integer(), nullable=False),
    sa.Column('flagged_tmobile', sa.Integer(), nullable=False),
    sa.Column('flagged_att', sa.Integer(), nullable=False),
    sa.Column('flagged_verizon', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'phone_number', 'hour', name='pk_hourly_buckets')
    )
    op.create_index('ix_hourly_buckets_hour', 'hourly_buckets', ['hour'], unique=False)
    op.create_index('ix_hourly_buckets_tenant_hour', 'hourly_buckets', ['tenant_id', 'hour'], unique=False)
    op.create_table('idempotency_keys',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('request_id', sa.String(length=128), nullable=False),
    sa.Column('method', sa.String(length=64), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('response', sa.LargeBinary(), nullable=True),
    sa.Column('create_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'request_id')
    )
    op.create_index('ix_idempotency_keys_create_time', 'idempotency_keys', ['create_time'], unique=False)
    op.create_table('numbers',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('phone_number', sa.String(length=16), nullable=False),
    sa.Column('area_code', sa.String(length=8), nullable=False),
    sa.Column('attestation', sa.String(length=8), nullable=False),
    sa.Column('inbound_enabled', sa.Boolean(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('update_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'phone_number', name='pk_numbers')
    )
    op.create_table('observations',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('phone_number', sa.String(length=16), nullable=False),
    sa.Column('source', sa.SmallInteger(), nullable=False),
    sa.Column('label', sa.SmallInteger(), nullable=False),
    sa.Column('raw_label', sa.String(length=200), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('observe_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ingest_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'event_id', name='pk_observations')
    )
    op.create_index('ix_observations_observe_time', 'observations', ['observe_time'], unique=False)
    op.create_table('policies',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('overrides', sa.Text(), nullable=False),
    sa.Column('update_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id')
    )
    op.create_table('prospect_daily',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('phone_number', sa.String(length=16), nullable=False),
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('remote_number', sa.String(length=16), nullable=False),
    sa.Column('calls', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'phone_number', 'day', 'remote_number', name='pk_prospect_daily')
    )
    op.create_index('ix_prospect_daily_day', 'prospect_daily', ['day'], unique=False)
    op.create_table('source_labels',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('phone_number', sa.String(length=16), nullable=False),
    sa.Column('source', sa.SmallInteger(), nullable=False),
    sa.Column('label', sa.SmallInteger(), nullable=False),
    sa.Column('raw_label', sa.String(length=200), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('observe_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'phone_number', 'source', name='pk_source_labels')
    )
    op.create_index('ix_source_labels_source', 'source_labels', ['tenant_id', 'source', 'phone_number'], unique=False)
    op.create_table('status_counts',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.SmallInteger(), nullable=False),
    sa.Column('numbers', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'status', name='pk_status_counts')
    )
    op.create_table('talk_histogram',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('phone_number', sa.String(length=16), nullable=False),
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('seconds', sa.SmallInteger(), nullable=False),
    sa.Column('calls', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'phone_number', 'day', 'seconds', name='pk_talk_histogram')
    )
    op.create_index('ix_talk_histogram_day', 'talk_histogram', ['day'], unique=False)
    op.bulk_insert(sa.table("feed_head", sa.column("id", sa.Integer), sa.column("revision", sa.BigInteger),
                            sa.column("compacted_through", sa.BigInteger)),
                   [{"id": 1, "revision": 0, "compacted_through": 0}])


def downgrade() -> None:
    op.drop_index('ix_talk_histogram_day', table_name='talk_histogram')
    op.drop_table('talk_histogram')
    op.drop_table('status_counts')
    op.drop_index('ix_source_labels_source', table_name='source_labels')
    op.drop_table('source_labels')
    op.drop_index('ix_prospect_daily_day', table_name='prospect_daily')
    op.drop_table('prospect_daily')
    op.drop_table('policies')
    op.drop_index('ix_observations_observe_time', table_name='observations')
    op.drop_table('observations')
    op.drop_table('numbers')
    op.drop_index('ix_idempotency_keys_create_time', table_name='idempotency_keys')
    op.drop_table('idempotency_keys')
    op.drop_index('ix_hourly_buckets_tenant_hour', table_name='hourly_buckets')
    op.drop_index('ix_hourly_buckets_hour', table_name='hourly_buckets')
    op.drop_table('hourly_buckets')
    op.drop_index('ix_health_history_tenant_time', table_name='health_history')
    op.drop_index('ix_health_history_number', table_name='health_history')
    op.drop_table('health_history')
    op.drop_index('ix_health_time_sensitive', table_name='health')
    op.drop_index('ix_health_status', table_name='health')
    op.drop_index('ix_health_area_status', table_name='health')
    op.drop_index('ix_health_area_code', table_name='health')
    op.drop_table('health')
    op.drop_table('feed_head')
    op.drop_table('feed_cursors')
    op.drop_index('ix_feed_changes_tenant_revision', table_name='feed_changes')
    op.drop_table('feed_changes')
    op.drop_index('ix_daily_buckets_day', table_name='daily_buckets')
    op.drop_table('daily_buckets')
    op.drop_index('ix_complaints_report_time', table_name='complaints')
    op.drop_table('complaints')
    op.drop_index('ix_call_outcomes_start_time', table_name='call_outcomes')
    op.drop_index('ix_call_outcomes_number_time', table_name='call_outcomes')
    op.drop_table('call_outcomes')
    op.drop_index('ix_assignments_number', table_name='assignments')
    op.drop_table('assignments')
    op.drop_table('api_key_replica')
