"""speed: drop the check-in indexes no query reads — by person (hash) and by returnee
registration. Every stored scan paid for both B-trees (ingest on SQLite: ~10,000 against
~11,200 events/s without them, same run); no read asks check-ins by person or registration
(retention anonymises by time, registrations are never deleted). An index comes back with the
first query that reads by it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 18:40:00
"""

from __future__ import annotations

from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_checkin_person_hash', 'checkin')
    op.drop_index('ix_checkin_registration_id', 'checkin')


def downgrade() -> None:
    op.create_index('ix_checkin_registration_id', 'checkin', ['registration_id'])
    op.create_index('ix_checkin_person_hash', 'checkin', ['person_hash'])
