"""faults: ledger keyed by (stream, event_id) with a content digest; work-order steps ordered
and refusable in the fold; derived ids fit every engine

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 05:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

#: columns holding ids derived from a producer's 64-character ones (``auto-<event_id>`` …)
WIDENED = (("case_report", "event_id", True), ("work_order", "id", False), ("work_order_event", "event_id", True),
           ("work_order_event", "order_id", False), ("state_change", "entity_id", False),
           ("state_change", "event_id", True))


def _ledger_key(columns: list[str]) -> None:
    """The ledger's primary key on ``columns`` (SQLite names no constraint: the table is copied)."""
    if op.get_bind().dialect.name == 'sqlite':
        op.create_table('processed_event_new',
                        sa.Column('stream', sa.String(length=16), nullable=False),
                        sa.Column('event_id', sa.String(length=96), nullable=False),
                        sa.Column('digest', sa.String(length=64), nullable=True),
                        sa.Column('entry_id', sa.String(length=32), nullable=False),
                        sa.Column('processed_at', sa.DateTime(), nullable=False),
                        sa.Column('effects', sa.JSON(), nullable=True),
                        sa.PrimaryKeyConstraint(*columns))
        op.execute('INSERT INTO processed_event_new (stream, event_id, digest, entry_id, processed_at, effects) '
                   'SELECT stream, event_id, digest, entry_id, processed_at, effects FROM processed_event')
        op.drop_table('processed_event')
        op.rename_table('processed_event_new', 'processed_event')
    else:
        op.drop_constraint('processed_event_pkey', 'processed_event', type_='primary')
        op.create_primary_key('processed_event_pkey', 'processed_event', columns)


def upgrade() -> None:
    op.add_column('processed_event', sa.Column('digest', sa.String(length=64), nullable=True))
    _ledger_key(['stream', 'event_id'])
    with op.batch_alter_table('work_order_event') as batch_op:
        batch_op.add_column(sa.Column('seq', sa.String(length=40), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('refused', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('priority', sa.String(length=8), nullable=True))
    for table, column, nullable in WIDENED:  # SQLite does not enforce it, but its schema says it too
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column(column, type_=sa.String(length=80), existing_type=sa.String(length=64),
                                  existing_nullable=nullable)


def downgrade() -> None:
    with op.batch_alter_table('work_order_event') as batch_op:
        batch_op.drop_column('priority')
        batch_op.drop_column('refused')
        batch_op.drop_column('seq')
    _ledger_key(['event_id'])
    with op.batch_alter_table('processed_event') as batch_op:
        batch_op.drop_column('digest')
