"""screens: a health check-in may correct an earlier one recorded in error (its event_id)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('health_checkin') as batch:
        batch.add_column(sa.Column('corrects', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('health_checkin') as batch:
        batch.drop_column('corrects')
