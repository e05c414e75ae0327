"""Initial registry schema: tenants, API keys, numbers (labels, lifecycle history), campaigns and their
numbers, the change feed and idempotency keys.

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from nhm_platform.feed import ChangeLog

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('secret_sha256', sa.String(length=64), nullable=False),
    sa.Column('create_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoke_time', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('secret_sha256', name='uq_api_keys_secret_sha256')
    )
    op.create_index('ix_api_keys_tenant_id', 'api_keys', ['tenant_id', 'id'], unique=False)
    op.create_table('campaign_numbers',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('campaign_id', sa.String(length=40), nullable=False),
    sa.Column('phone_number', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'campaign_id', 'phone_number', name='pk_campaign_numbers')
    )
    op.create_index('ix_campaign_numbers_number', 'campaign_numbers', ['tenant_id', 'phone_number'], unique=False)
    op.create_table('campaigns',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.String(length=2000), nullable=False),
    sa.Column('policy', sa.Text(), nullable=False),
    sa.Column('create_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('update_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('etag', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'name', name='uq_campaigns_tenant_name')
    )
    op.create_index('ix_campaigns_tenant_id', 'campaigns', ['tenant_id', 'id'], unique=False)
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
    op.create_table('feed_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.Column('compacted_through', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
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
    op.create_index('ix_idempotency_keys_create_time', 'idempotency_keys', ['create_time'], unique=False)
    op.create_table('number_labels',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('phone_number', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=63), nullable=False),
    sa.Column('value', sa.String(length=256), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'phone_number', 'key', name='pk_number_labels')
    )
    op.create_index('ix_number_labels_key_value', 'number_labels', ['tenant_id', 'key', 'value'], unique=False)
    op.create_table('number_transitions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('phone_number', sa.String(length=16), nullable=False),
    sa.Column('from_state', sa.String(length=16), nullable=False),
    sa.Column('to_state', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.String(length=1000), nullable=False),
    sa.Column('transition_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_number_transitions_number', 'number_transitions', ['tenant_id', 'phone_number', 'transition_time', 'id'], unique=False)
    op.create_table('numbers',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('phone_number', sa.String(length=16), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('area_code', sa.String(length=8), nullable=False),
    sa.Column('exchange', sa.String(length=8), nullable=False),
    sa.Column('region', sa.String(length=64), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=64), nullable=False),
    sa.Column('provider', sa.String(length=200), nullable=False),
    sa.Column('attestation', sa.String(length=8), nullable=False),
    sa.Column('registrations', sa.Text(), nullable=False),
    sa.Column('inbound_enabled', sa.Boolean(), nullable=False),
    sa.Column('inbound_required_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('state_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rest_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('warmup_daily_caps', sa.String(length=400), nullable=True),
    sa.Column('warmup_step_seconds', sa.BigInteger(), nullable=True),
    sa.Column('warmup_start_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('create_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('update_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('etag', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'phone_number', name='pk_numbers')
    )
    op.create_index('ix_numbers_area_code', 'numbers', ['tenant_id', 'area_code', 'phone_number'], unique=False)
    op.create_index('ix_numbers_create_time', 'numbers', ['tenant_id', 'create_time', 'phone_number'], unique=False)
    op.create_index('ix_numbers_region', 'numbers', ['tenant_id', 'region', 'phone_number'], unique=False)
    op.create_index('ix_numbers_state', 'numbers', ['tenant_id', 'state', 'phone_number'], unique=False)
    op.create_index('ix_numbers_update_time', 'numbers', ['tenant_id', 'update_time', 'phone_number'], unique=False)
    op.create_table('tenants',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('legal_name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.String(length=2000), nullable=False),
    sa.Column('website', sa.String(length=200), nullable=False),
    sa.Column('call_purpose', sa.String(length=2000), nullable=False),
    sa.Column('expected_monthly_volume', sa.BigInteger(), nullable=False),
    sa.Column('contact_email', sa.String(length=200), nullable=False),
    sa.Column('contact_phone', sa.String(length=16), nullable=False),
    sa.Column('create_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('update_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('etag', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )

    op.bulk_insert(sa.table("feed_head", sa.column("id", sa.Integer()), sa.column("revision", sa.BigInteger()),
                            sa.column("compacted_through", sa.BigInteger())),
                   ChangeLog(sa.MetaData(), "feed").seed_rows())


def downgrade() -> None:
    op.drop_table('tenants')
    op.drop_index('ix_numbers_update_time', table_name='numbers')
    op.drop_index('ix_numbers_state', table_name='numbers')
    op.drop_index('ix_numbers_region', table_name='numbers')
    op.drop_index('ix_numbers_create_time', table_name='numbers')
    op.drop_index('ix_numbers_area_code', table_name='numbers')
    op.drop_table('numbers')
    op.drop_index('ix_number_transitions_number', table_name='number_transitions')
    op.drop_table('number_transitions')
    op.drop_index('ix_number_labels_key_value', table_name='number_labels')
    op.drop_table('number_labels')
    op.drop_index('ix_idempotency_keys_create_time', table_name='idempotency_keys')
    op.drop_table('idempotency_keys')
    op.drop_table('feed_head')
    op.drop_index('ix_feed_changes_tenant_revision', table_name='feed_changes')
    op.drop_table('feed_changes')
    op.drop_index('ix_campaigns_tenant_id', table_name='campaigns')
    op.drop_table('campaigns')
    op.drop_index('ix_campaign_numbers_number', table_name='campaign_numbers')
    op.drop_table('campaign_numbers')
    op.drop_index('ix_api_keys_tenant_id', table_name='api_keys')
    op.drop_table('api_keys')
