"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-28 15:20:08.680729
"""
from alembic import op
import sqlalchemy as sa
import keyward.storage.types


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', keyward.storage.types.UTCDateTime(), nullable=False),
    sa.Column('kind', sa.String(length=48), nullable=False),
    sa.Column('level', sa.String(length=8), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=True),
    sa.Column('pool', sa.String(length=64), nullable=True),
    sa.Column('key_id', sa.String(length=128), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_at', ['at'], unique=False)

    op.create_table('leases',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=255), nullable=False),
    sa.Column('epoch', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', keyward.storage.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('meta',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', keyward.storage.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('pools',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=128), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('current_key_id', sa.String(length=128), nullable=True),
    sa.Column('current_reason', sa.Text(), nullable=True),
    sa.Column('current_since', keyward.storage.types.UTCDateTime(), nullable=True),
    sa.Column('all_exhausted', sa.Boolean(), nullable=False),
    sa.Column('published_key_id', sa.String(length=128), nullable=True),
    sa.Column('published_at', keyward.storage.types.UTCDateTime(), nullable=True),
    sa.Column('created_at', keyward.storage.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('projects',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=True),
    sa.Column('pool_id', sa.Integer(), nullable=False),
    sa.Column('managed', sa.Boolean(), nullable=False),
    sa.Column('service_account', sa.String(length=320), nullable=True),
    sa.Column('allowed_ips', sa.Text(), nullable=False),
    sa.Column('min_age_s', sa.Integer(), nullable=True),
    sa.Column('max_age_s', sa.Integer(), nullable=True),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('rotation_failures', sa.Integer(), nullable=False),
    sa.Column('rotation_backoff_until', keyward.storage.types.UTCDateTime(), nullable=True),
    sa.Column('created_at', keyward.storage.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['pool_id'], ['pools.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id')
    )
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_projects_pool_id'), ['pool_id'], unique=False)

    op.create_table('exhaustion',
    sa.Column('project_pk', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=128), nullable=False),
    sa.Column('until', keyward.storage.types.UTCDateTime(), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('quota_ids', sa.Text(), nullable=False),
    sa.Column('recorded_at', keyward.storage.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['project_pk'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_pk', 'model')
    )
    op.create_table('keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key_id', sa.String(length=128), nullable=False),
    sa.Column('project_pk', sa.Integer(), nullable=False),
    sa.Column('google_name', sa.String(length=512), nullable=True),
    sa.Column('google_uid', sa.String(length=64), nullable=True),
    sa.Column('etag', sa.String(length=128), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('secret', sa.Text(), nullable=True),
    sa.Column('masked', sa.String(length=32), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('created_at', keyward.storage.types.UTCDateTime(), nullable=False),
    sa.Column('promoted_at', keyward.storage.types.UTCDateTime(), nullable=True),
    sa.Column('retired_at', keyward.storage.types.UTCDateTime(), nullable=True),
    sa.Column('rotate_after', keyward.storage.types.UTCDateTime(), nullable=True),
    sa.Column('grace_until', keyward.storage.types.UTCDateTime(), nullable=True),
    sa.Column('invalid_reason', sa.Text(), nullable=True),
    sa.Column('invalid_at', keyward.storage.types.UTCDateTime(), nullable=True),
    sa.Column('replaced_by', sa.String(length=128), nullable=True),
    sa.ForeignKeyConstraint(['project_pk'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('google_name'),
    sa.UniqueConstraint('key_id')
    )
    with op.batch_alter_table('keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_keys_fingerprint'), ['fingerprint'], unique=False)
        batch_op.create_index(batch_op.f('ix_keys_google_uid'), ['google_uid'], unique=False)
        batch_op.create_index(batch_op.f('ix_keys_project_pk'), ['project_pk'], unique=False)
        batch_op.create_index(batch_op.f('ix_keys_state'), ['state'], unique=False)

    op.create_table('limits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_pk', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=128), nullable=False),
    sa.Column('rpm', sa.BigInteger(), nullable=True),
    sa.Column('tpm', sa.BigInteger(), nullable=True),
    sa.Column('rpd', sa.BigInteger(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('updated_at', keyward.storage.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['project_pk'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_pk', 'model', name='uq_limits_project_model')
    )
    op.create_table('rotations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_pk', sa.Integer(), nullable=False),
    sa.Column('step', sa.String(length=16), nullable=False),
    sa.Column('new_key_id', sa.String(length=128), nullable=False),
    sa.Column('old_key_id', sa.String(length=128), nullable=True),
    sa.Column('operation', sa.String(length=512), nullable=True),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('started_at', keyward.storage.types.UTCDateTime(), nullable=False),
    sa.Column('updated_at', keyward.storage.types.UTCDateTime(), nullable=False),
    sa.Column('finished_at', keyward.storage.types.UTCDateTime(), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.ForeignKeyConstraint(['project_pk'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('new_key_id')
    )
    with op.batch_alter_table('rotations', schema=None) as batch_op:
        batch_op.create_index('ix_rotations_project_open', ['project_pk', 'finished_at'], unique=False)

    op.create_table('usage_days',
    sa.Column('project_pk', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=128), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('requests', sa.BigInteger(), nullable=False),
    sa.Column('input_tokens', sa.BigInteger(), nullable=False),
    sa.Column('output_tokens', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['project_pk'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_pk', 'model', 'day', 'source')
    )
    op.create_table('usage_minutes',
    sa.Column('project_pk', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=128), nullable=False),
    sa.Column('minute', keyward.storage.types.UTCDateTime(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('requests', sa.BigInteger(), nullable=False),
    sa.Column('input_tokens', sa.BigInteger(), nullable=False),
    sa.Column('output_tokens', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['project_pk'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_pk', 'model', 'minute', 'source')
    )
    with op.batch_alter_table('usage_minutes', schema=None) as batch_op:
        batch_op.create_index('ix_usage_minutes_minute', ['minute'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('usage_minutes', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_minutes_minute')

    op.drop_table('usage_minutes')
    op.drop_table('usage_days')
    with op.batch_alter_table('rotations', schema=None) as batch_op:
        batch_op.drop_index('ix_rotations_project_open')

    op.drop_table('rotations')
    op.drop_table('limits')
    with op.batch_alter_table('keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_keys_state'))
        batch_op.drop_index(batch_op.f('ix_keys_project_pk'))
        batch_op.drop_index(batch_op.f('ix_keys_google_uid'))
        batch_op.drop_index(batch_op.f('ix_keys_fingerprint'))

    op.drop_table('keys')
    op.drop_table('exhaustion')
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_projects_pool_id'))

    op.drop_table('projects')
    op.drop_table('pools')
    op.drop_table('meta')
    op.drop_table('leases')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_at')

    op.drop_table('events')
