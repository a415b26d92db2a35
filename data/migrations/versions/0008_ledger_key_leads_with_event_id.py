"""speed: the ledger's key leads with event_id on PostgreSQL, so a batch's lookup of 1,000 ids is
1,000 index probes whatever the planner's statistics say (led by stream, it read every row of the
stream: 382 events/s at 100,000 rows on a server without fresh statistics, 2,759 with this key)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 12:40:00
"""

from __future__ import annotations

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def _key(columns: list[str]) -> None:
    """SQLite probes a two-column key for each value of an IN list either way: only PostgreSQL changes."""
    if op.get_bind().dialect.name != 'sqlite':
        op.drop_constraint('processed_event_pkey', 'processed_event', type_='primary')
        op.create_primary_key('processed_event_pkey', 'processed_event', columns)


def upgrade() -> None:
    _key(['event_id', 'stream'])


def downgrade() -> None:
    _key(['stream', 'event_id'])
