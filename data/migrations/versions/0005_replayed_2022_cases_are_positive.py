"""honest numbers: the 2022 lists' cases stored by an earlier replay as ``confirmed`` become
``positive`` (阳性感染者: the lists published confirmed and asymptomatic addresses alike)

Their ledger rows forget the old content digest, so the same replay sent again is a duplicate,
not a conflict (a NULL digest is how rows from before 0004 are treated too).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 08:20:00
"""

from __future__ import annotations

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

REPLAYED = "source = '上海发布 2022'"
LEDGER = "stream = 'cases' AND event_id LIKE 'replay2022:%'"


def upgrade() -> None:
    op.execute(f"UPDATE case_report SET category = 'positive' WHERE category = 'confirmed' AND {REPLAYED}")
    op.execute(f"UPDATE processed_event SET digest = NULL WHERE {LEDGER}")


def downgrade() -> None:
    op.execute(f"UPDATE case_report SET category = 'confirmed' WHERE category = 'positive' AND {REPLAYED}")
