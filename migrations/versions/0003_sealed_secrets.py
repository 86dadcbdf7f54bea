"""sealed secrets: record which master key sealed each key string, and seal plain ones in place

Revision ID: 0003_sealed_secrets
Revises: 0001
Create Date: 2026-12-03 17:30:00

The `secret` column keeps its name and type: a sealed value is text (`kw1:...`, see
keyward.sealing). `sealed_by` names the master key, so status and rekey count rows without
opening them. When the upgrade runs with a master key at hand, every plain key string is sealed
in this same transaction; without one they stay plain, `keyward status` warns, and
`keyward db encrypt` seals them later.
"""
import logging

from alembic import context, op
import sqlalchemy as sa

from keyward.errors import KeywardError

log = logging.getLogger("keyward.migrations")


revision = '0003_sealed_secrets'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sealed_by', sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f('ix_keys_sealed_by'), ['sealed_by'], unique=False)

    from keyward.storage import secret_queries

    conn = op.get_bind()
    secret_queries.mark_sealed_by(conn)
    sealer = context.config.attributes.get("sealer")
    try:
        master = sealer.primary if sealer is not None else None
    except KeywardError as exc:  # an unusable key source must not block the upgrade (or `status`)
        log.warning("key strings left in plain text: %s", exc)
        master = None
    if master is not None:
        secret_queries.reseal_all(conn, sealer, master, only_plain=True, kind="db.encrypt")


def downgrade() -> None:
    conn = op.get_bind()
    sealed = conn.execute(sa.text("SELECT COUNT(*) FROM keys WHERE secret LIKE 'kw1:%'")).scalar()
    if sealed:
        raise RuntimeError(
            f"{sealed} key string(s) are sealed; an older keyward would take them for key strings. "
            "Add the keys again in plain text before downgrading."
        )
    with op.batch_alter_table('keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_keys_sealed_by'))
        batch_op.drop_column('sealed_by')
