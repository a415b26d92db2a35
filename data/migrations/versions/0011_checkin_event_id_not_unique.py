"""speed: a check-in's event_id is no longer a unique key of its own. The ledger
(processed_event, written in the same transaction) already keeps each check-in to one row; the
second B-tree over the same random ids cost every scan dearly once the table was large: with a
million check-ins stored and UUID event ids, inserting a batch's check-ins and ledger rows took
65 µs an event with it and 43 without (bare sqlite3, same run), and the worker stored 5,665-6,163
events/s. No query reads check-ins by event_id.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 11:00:00
"""

from __future__ import annotations

from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

#: SQLite keeps the constraint unnamed (inline in CREATE TABLE): batch mode names it by this
#: convention to drop it; PostgreSQL named it itself
_NAMES = {"uq": "%(table_name)s_%(column_0_name)s_key"}


def upgrade() -> None:
    with op.batch_alter_table('checkin', naming_convention=_NAMES) as batch:
        batch.drop_constraint('checkin_event_id_key', type_='unique')


def downgrade() -> None:
    with op.batch_alter_table('checkin', naming_convention=_NAMES) as batch:
        batch.create_unique_constraint('checkin_event_id_key', ['event_id'])
