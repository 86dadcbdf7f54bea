"""project summaries: one row per project and model with its latest minutes and day, kept on write

Revision ID: 0004_project_summaries
Revises: 0003_sealed_secrets
Create Date: 2026-12-03 18:50:00

`keyward status` without a daemon reads these rows instead of the minute buckets (see
keyward.storage.usage_queries). The upgrade fills them from the buckets already there: the two
latest minutes of the last ten (older ones are outside any RPM window by now) and the latest
Pacific day's effective total.
"""
from datetime import datetime, timedelta, timezone

from alembic import op
import sqlalchemy as sa

import keyward.storage.types

revision = '0004_project_summaries'
down_revision = '0003_sealed_secrets'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        'usage_summaries',
        sa.Column('project_pk', sa.Integer(), nullable=False),
        sa.Column('model', sa.String(length=128), nullable=False),
        sa.Column('minute', keyward.storage.types.UTCDateTime(), nullable=True),
        sa.Column('requests', sa.BigInteger(), nullable=False),
        sa.Column('tokens', sa.BigInteger(), nullable=False),
        sa.Column('prev_minute', keyward.storage.types.UTCDateTime(), nullable=True),
        sa.Column('prev_requests', sa.BigInteger(), nullable=False),
        sa.Column('prev_tokens', sa.BigInteger(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('day_requests', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['project_pk'], ['projects.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('project_pk', 'model'),
    )
    _backfill(op.get_bind(), table)


def downgrade() -> None:
    op.drop_table('usage_summaries')


def _backfill(conn, table) -> None:
    minutes = sa.table('usage_minutes', sa.column('project_pk'), sa.column('model'),
                       sa.column('minute', keyward.storage.types.UTCDateTime()), sa.column('source'),
                       sa.column('requests'), sa.column('input_tokens'))
    days = sa.table('usage_days', sa.column('project_pk'), sa.column('model'), sa.column('day', sa.Date()),
                    sa.column('source'), sa.column('requests'))
    rows: dict[tuple[int, str], dict] = {}
    latest = sa.select(days.c.project_pk, days.c.model, sa.func.max(days.c.day).label('day')).where(
        days.c.source == 'effective').group_by(days.c.project_pk, days.c.model).subquery()
    for pk, model, day, requests in conn.execute(
            sa.select(days.c.project_pk, days.c.model, days.c.day, days.c.requests).join(
                latest, sa.and_(latest.c.project_pk == days.c.project_pk, latest.c.model == days.c.model,
                                latest.c.day == days.c.day)).where(days.c.source == 'effective')):
        rows[(pk, model)] = {'project_pk': pk, 'model': model, 'minute': None, 'requests': 0, 'tokens': 0,
                             'prev_minute': None, 'prev_requests': 0, 'prev_tokens': 0, 'day': day,
                             'day_requests': requests}
    since = datetime.now(timezone.utc) - timedelta(minutes=10)
    merged: dict[tuple[int, str], dict[datetime, list[int]]] = {}
    for pk, model, minute, _source, requests, tokens in conn.execute(
            sa.select(minutes).where(minutes.c.minute >= since)):
        cell = merged.setdefault((pk, model), {}).setdefault(minute, [0, 0])
        cell[0], cell[1] = max(cell[0], requests), max(cell[1], tokens)
    for slot, by_minute in merged.items():
        row = rows.get(slot)
        if row is None:  # minutes without a day row: not written by keyward's write path
            continue
        latest_two = sorted(by_minute.items(), reverse=True)[:2]
        row['minute'], (row['requests'], row['tokens']) = latest_two[0]
        if len(latest_two) > 1:
            row['prev_minute'], (row['prev_requests'], row['prev_tokens']) = latest_two[1]
    if rows:
        conn.execute(sa.insert(table), list(rows.values()))
